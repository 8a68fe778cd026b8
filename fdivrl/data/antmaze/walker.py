"""The walker: a goal-reaching ant that stands in for minari's "GoalReachAnt" policy.

minari's AntMaze v1 data were recorded by a waypoint controller steering a learned low-level policy
(docs/references.md §3); those weights are only a download, so fdivrl trains its own on `GoalReachAnt`:

* physics: the Ant of gymnasium-robotics' AntMaze-v4, built by its own constructor (gymnasium's
  ant.xml, RK4, timestep 0.01, frame_skip 5, so dt = 0.05) on a one-cell map without walls — the
  floor plane is infinite for collisions, and the policy cannot see walls anyway;
* observation (float32, 29): the AntMaze ant observation qpos[2:] + qvel (27, no x, y), then
  goal_delta = goal − torso x, y (2) with its length clipped to `GOAL_CLIP`. The walker policy
  applies the same clip, so data generation feeds the actor exactly what training did;
* reward: `progress_weight` · (d_before − d_after)/dt − `ctrl_cost_weight` · ‖a‖² + `survive_bonus`
  while healthy, with d the distance to the goal (10, 0.5, 1 by default, as minari's). Progress is
  the velocity toward the goal averaged over the step, and it telescopes, so circling earns nothing;
* goals: angle U[0, 2π), radius U[`min_goal_radius`, `max_goal_radius`] (0.5–6) around the torso,
  covering AntMaze's waypoints (one cell, 4 units, apart). Within `goal_threshold` (0.45, AntMaze's
  waypoint switch) a new goal is drawn around the ant, so one episode practices many waypoints;
* termination: torso z outside [0.2, 1.0] (Ant-v4's healthy range), torso tilted past horizontal
  (flipped ants rest at z ≈ 0.27, inside the z range), or a non-finite state; time limit 1000 steps.

The walker file (`save_walker` / `load_walker`) is one .npz: the actor parameters under
``params/<flattened path>`` and a JSON ``meta`` string (architecture, observation layout, and the
caller's record: command, steps, seed, measured success). jax and flax are imported inside the
policy functions so env worker processes (AsyncVectorEnv) do not load them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fdivrl.data.datasets import register_robotics_envs
from fdivrl.errors import DatasetError
from fdivrl.runs.io import atomic_write

register_robotics_envs()  # imports gymnasium_robotics without its unrelated Adroit notice
from gymnasium_robotics.envs.maze.ant_maze_v4 import AntMazeEnv  # noqa: E402

ENV_ID = "fdivrl/GoalReachAnt-v0"
ANT_OBS_DIM = 27
OBS_DIM = ANT_OBS_DIM + 2
ACT_DIM = 8
GOAL_CLIP = 6.0
"""Longest goal_delta the actor sees; farther goals keep their direction (the largest sampled radius)."""
HEALTHY_Z = (0.2, 1.0)
DEFAULT_WALKER_PATH = Path(__file__).resolve().parents[2] / "assets" / "walker.npz"
FILE_FORMAT = "fdivrl-walker-1"


def clip_goal_delta(goal_delta: np.ndarray, clip: float = GOAL_CLIP) -> np.ndarray:
    """Shorten goal vectors (rows of ``(..., 2)``) longer than ``clip``, keeping their direction."""
    norm = np.linalg.norm(goal_delta, axis=-1, keepdims=True)
    return goal_delta * np.minimum(1.0, clip / np.maximum(norm, 1e-12))


def walker_input(ant_obs: np.ndarray, goal_delta: np.ndarray, clip: float = GOAL_CLIP) -> np.ndarray:
    """The actor's input: ant observation then clipped goal_delta, float32 (env obs and policy share it)."""
    return np.concatenate([ant_obs, clip_goal_delta(goal_delta, clip)], axis=-1).astype(np.float32)


class GoalReachAnt(gym.Env[np.ndarray, np.ndarray]):
    """AntMaze-v4's ant chasing goals sampled around it (see the module docstring for the definition)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}

    def __init__(
        self,
        progress_weight: float = 10.0,
        ctrl_cost_weight: float = 0.5,
        survive_bonus: float = 1.0,
        min_goal_radius: float = 0.5,
        max_goal_radius: float = 6.0,
        goal_threshold: float = 0.45,
        reset_noise: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        if not goal_threshold < min_goal_radius <= max_goal_radius:
            raise ValueError("need goal_threshold < min_goal_radius <= max_goal_radius")
        self.progress_weight = progress_weight
        self.ctrl_cost_weight = ctrl_cost_weight
        self.survive_bonus = survive_bonus
        self.goal_radius = (min_goal_radius, max_goal_radius)
        self.goal_threshold = goal_threshold
        self.reset_noise = reset_noise
        self.render_mode = render_mode
        # AntMaze's own constructor guarantees its model and simulation settings; it leaves the
        # merged xml in the temp dir, which the loaded model no longer needs.
        self._maze = AntMazeEnv(maze_map=[[0]], render_mode=render_mode)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._maze.tmp_xml_file_path)
        self._ant = self._maze.ant_env
        self.action_space = self._ant.action_space
        self.observation_space = spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.goal = np.zeros(2)
        self._goals_reached = 0

    @property
    def dt(self) -> float:
        return self._ant.dt

    @property
    def xy(self) -> np.ndarray:
        return self._ant.data.qpos[:2].copy()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Place the ant (tests and scripted starts); the goal is left as it is."""
        self._ant.set_state(qpos, qvel)

    def is_healthy(self) -> bool:
        qpos, qvel = self._ant.data.qpos, self._ant.data.qvel
        x, y = qpos[4:6]  # quaternion (w, x, y, z) at qpos[3:7]
        upright = 1.0 - 2.0 * (x * x + y * y)  # z component of the torso's up axis
        finite = np.isfinite(qpos).all() and np.isfinite(qvel).all()
        return bool(finite and HEALTHY_Z[0] <= qpos[2] <= HEALTHY_Z[1] and upright >= 0.0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._ant.reset()
        model = self._ant.model
        qpos = self._ant.init_qpos + self.np_random.uniform(-self.reset_noise, self.reset_noise, model.nq)
        qvel = self._ant.init_qvel + self.reset_noise * self.np_random.standard_normal(model.nv)
        self._ant.set_state(qpos, qvel)
        self.goal = self._sample_goal()
        self._goals_reached = 0
        return self._obs(), self._info(False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64)
        d_before = float(np.linalg.norm(self.goal - self.xy))
        self._ant.do_simulation(action, self._ant.frame_skip)
        d_after = float(np.linalg.norm(self.goal - self.xy))
        healthy = self.is_healthy()
        reward = (
            self.progress_weight * (d_before - d_after) / self.dt
            - self.ctrl_cost_weight * float(np.sum(np.square(action)))
            + self.survive_bonus * healthy
        )
        reached = d_after <= self.goal_threshold
        if reached:
            self._goals_reached += 1
            self.goal = self._sample_goal()
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, not healthy, False, self._info(reached)

    def render(self) -> np.ndarray | None:
        self._ant.model.site_pos[self._maze.target_site_id, :2] = self.goal
        return self._ant.render()

    def close(self) -> None:
        self._maze.close()

    def _sample_goal(self) -> np.ndarray:
        angle = self.np_random.uniform(0.0, 2 * np.pi)
        radius = self.np_random.uniform(*self.goal_radius)
        return self.xy + radius * np.array([np.cos(angle), np.sin(angle)])

    def _obs(self) -> np.ndarray:
        ant_obs = np.concatenate([self._ant.data.qpos[2:], self._ant.data.qvel])
        return walker_input(ant_obs, self.goal - self.xy)

    def _info(self, reached: bool) -> dict[str, Any]:
        # the same keys at reset and step, so vector envs stack every step's infos alike
        return {
            "success": reached,
            "goals_reached": self._goals_reached,
            "goal": self.goal.copy(),
            "distance": float(np.linalg.norm(self.goal - self.xy)),
        }


def register() -> None:
    """Register `ENV_ID` with gymnasium (idempotent); call before ``gym.make(ENV_ID)``."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=f"{__name__}:GoalReachAnt", max_episode_steps=1000)


class WalkerPolicy:
    """The deterministic walker, tanh(mean) of `fdivrl.learning.networks.Actor`, batched and jitted once."""

    def __init__(
        self, params: Any, hidden: Sequence[int], layer_norm: bool, record: Mapping[str, Any], goal_clip: float
    ) -> None:
        import jax
        import jax.numpy as jnp

        from fdivrl.learning.networks import Actor

        self.hidden = tuple(hidden)
        self.layer_norm = layer_norm
        self.record = dict(record)
        self.goal_clip = goal_clip
        self.params = jax.device_put(params)
        actor = Actor(self.hidden, ACT_DIM, layer_norm)
        self._act = jax.jit(lambda p, x: jnp.tanh(actor.apply({"params": p}, x)[0]))

    def __call__(self, ant_obs: np.ndarray, goal_delta: np.ndarray) -> np.ndarray:
        """Actions (n, 8) for ant observations (n, 27) and goal vectors (n, 2) in world x, y."""
        if ant_obs.ndim != 2 or ant_obs.shape[1] != ANT_OBS_DIM or goal_delta.shape != (len(ant_obs), 2):
            raise ValueError(
                f"expected ant_obs (n, {ANT_OBS_DIM}) and goal_delta (n, 2), got {ant_obs.shape} and {goal_delta.shape}"
            )
        return np.asarray(self._act(self.params, walker_input(ant_obs, goal_delta, self.goal_clip)))


def _flat_params(params: Any) -> dict[str, np.ndarray]:
    from flax.traverse_util import flatten_dict

    return {key: np.asarray(value) for key, value in flatten_dict(params, sep="/").items()}


def _mismatch(flat: Mapping[str, np.ndarray], hidden: Sequence[int], layer_norm: bool) -> str | None:
    """Why ``flat`` is not a parameter set of Actor(hidden, 8, layer_norm) on 29 inputs, or None."""
    import jax
    import jax.numpy as jnp
    from flax.traverse_util import flatten_dict

    from fdivrl.learning.networks import Actor

    actor = Actor(tuple(hidden), ACT_DIM, layer_norm)
    shapes = jax.eval_shape(actor.init, jax.random.key(0), jnp.zeros((1, OBS_DIM)))["params"]
    expected = {key: tuple(v.shape) for key, v in flatten_dict(shapes, sep="/").items()}
    if {key: v.shape for key, v in flat.items()} == expected:
        return None
    return f"parameters do not fit Actor(hidden={tuple(hidden)}, layer_norm={layer_norm}) on {OBS_DIM} inputs"


def save_walker(
    path: str | os.PathLike, actor_params: Any, hidden: Sequence[int], layer_norm: bool, record: Mapping[str, Any]
) -> Path:
    """Write one walker file (atomically); ``record`` (JSON-serializable) says how it was made."""
    flat = _flat_params(actor_params)
    if (why := _mismatch(flat, hidden, layer_norm)) is not None:
        raise ValueError(why)
    meta = {
        "format": FILE_FORMAT,
        "hidden": list(hidden),
        "layer_norm": bool(layer_norm),
        "env_id": ENV_ID,
        "obs_layout": f"qpos[2:] + qvel ({ANT_OBS_DIM}), goal - torso xy (2, length clipped)",
        "goal_clip": GOAL_CLIP,
        "record": dict(record),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **{f"params/{k}": v for k, v in flat.items()})
    return path


def load_walker(path: str | os.PathLike | None = None) -> WalkerPolicy:
    """Load a walker file (default: the one shipped in the package); problems raise DatasetError."""
    from flax.traverse_util import unflatten_dict

    path = DEFAULT_WALKER_PATH if path is None else Path(path)
    if not path.is_file():
        raise DatasetError(f"no walker policy at {path}: train one with `fdivrl data walker`")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            flat = {key.removeprefix("params/"): z[key] for key in z.files if key.startswith("params/")}
        if meta.get("format") != FILE_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FILE_FORMAT!r}")
        hidden, layer_norm, goal_clip, record = meta["hidden"], meta["layer_norm"], meta["goal_clip"], meta["record"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{path} is not a readable walker file: {err}") from None
    if (why := _mismatch(flat, hidden, layer_norm)) is not None:
        raise DatasetError(f"{path}: {why}")
    return WalkerPolicy(unflatten_dict(flat, sep="/"), hidden, layer_norm, record, goal_clip)
