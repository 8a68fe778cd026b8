"""Local stand-ins for minari's ``D4RL/antmaze/*-v1`` datasets, collected the way minari's script did.

Why: the D4RL datasets cannot be downloaded everywhere, and their walker's weights exist only as a
download. This module drives a local walker (any :class:`fdivrl.data.antmaze.planner.WaypointPolicy`) through
the real gymnasium-robotics AntMaze envs and writes a minari dataset that
:func:`fdivrl.data.datasets.load` reads exactly like the real one. Ids live under
``fdivrl/antmaze/`` so a stand-in never hides or impersonates the real data.

The protocol of minari's v1 script, batched over ``n_envs`` copies of the env:

* env: :func:`fdivrl.data.antmaze.mazes.collection_spec` (continuing task, fixed target, limit 700 / 1000);
  episode seeds count up from ``seed`` in reset order, so the maze draws start and goal cells;
* action: ``clip(policy(observation, waypoint − ant x, y) + N(0, 0.2²), −1, 1)``, one batched
  policy call per vector step, waypoints from :class:`fdivrl.data.antmaze.planner.WaypointController`;
* episodes end by truncation only (``terminations`` all False): at the time limit, and every
  ``checkpoint_interval`` (200k) steps, when every running episode is cut and the data so far are
  written to disk, as minari's script did at its checkpoints; each checkpoint's steps are split
  evenly over the envs, so the dataset holds exactly ``steps`` transitions;
* infos per observation (T + 1 per episode, reset included): ``success``, ``goal`` (the desired
  goal), ``qpos`` (15: x, y, observation[:13]) and ``qvel`` (14: observation[13:]);
* metadata: ``ref_min_score`` = mean return of uniform random actions and ``ref_max_score`` = mean
  return of the noise-free controller, each over ``ref_episodes`` episodes of the eval env
  (:func:`fdivrl.data.antmaze.mazes.eval_spec`: fixed start and goal), as minari computes them.

:func:`controller_success` runs the noise-free controller's episodes alone and reports how often the
ant reaches the goal: the walker's quality measure (:func:`fdivrl.data.antmaze.walker_training.measure`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import itertools
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from fdivrl.data.antmaze.mazes import (
    MAZE_SIZE_SCALING,
    MazeMap,
    MazeTask,
    cell_to_xy,
    collection_spec,
    eval_map,
    eval_spec,
    get_task,
    map_shape,
    train_map,
)
from fdivrl.data.antmaze.planner import WaypointController, WaypointPolicy
from fdivrl.data.datasets import dataset_dir, datasets_root, make_env, register_robotics_envs
from fdivrl.errors import ConfigError, DatasetError
from fdivrl.training.episodes import EnvBatch, make_vector_env, run_episodes

DEFAULT_STEPS = 1_000_000
ACTION_NOISE = 0.2  # std of the Gaussian action noise of minari's script
CHECKPOINT_INTERVAL = 200_000  # minari's script cut its running episode and saved every 200k steps
REF_EPISODES = 100  # minari's num_episodes_average_score
# 10 envs: 100 reference episodes are 10 full rounds, and 200k-step checkpoints give each env 20k
# steps, so 1M medium/large steps are 1000 whole 1000-step episodes, as in the real datasets.
DEFAULT_N_ENVS = 10
# Measured on the 2-core dev machine: the env is physics-bound (mj_step ≈ 70% of a step) and
# async workers paid more in IPC than they gained; "async" remains an option for idle multi-core hosts.
DEFAULT_VECTORIZATION = "sync"
VISITATION_FILE = "visitation.png"
_BINS_PER_CELL = 8
_ID_RE = re.compile(r"^(?:[-\w]+/)*[-\w]+-v\d+$")


class Progress(Protocol):
    """Called after every vector step: ``phase`` is "ref-random", "ref-controller" (also
    :func:`controller_success`) or "collect"."""

    def __call__(self, phase: str, done: int, total: int) -> None: ...


def add_action_noise(actions: np.ndarray, rng: np.random.Generator, sigma: float = ACTION_NOISE) -> np.ndarray:
    """``clip(actions + N(0, sigma²), -1, 1)`` as float32: minari's exploration noise."""
    noisy = np.asarray(actions, dtype=np.float64) + sigma * rng.standard_normal(np.shape(actions))
    return np.clip(noisy, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Vector envs and actors


class _SuccessInfoOnly(gym.Wrapper):
    """Keeps only ``success`` of the infos: batching (and, async, pickling) the ant's dozen
    reward terms every step would cost time for data nobody records."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, {"success": bool(info["success"])}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {"success": bool(info["success"])}


def _make_env(spec: Any) -> gym.Env:
    """Env factory for the vector env (module level, so forkserver workers can unpickle it)."""
    register_robotics_envs()
    return _SuccessInfoOnly(make_env(spec, disable_env_checker=True))


def _vector_env(spec: Any, n_envs: int, vectorization: str) -> gym.vector.VectorEnv:
    return make_vector_env(functools.partial(_make_env, spec), n_envs, vectorization)


class _Actor(Protocol):
    def start(self, mask: np.ndarray, obs: dict[str, np.ndarray]) -> None: ...

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class _RandomActor:
    """Uniform random actions: minari's reference policy for ``ref_min_score``."""

    def __init__(self, n_envs: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n_envs, rng

    def start(self, mask: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        pass

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=(self.n, 8)).astype(np.float32)


class _WalkerActor:
    """The walker steered by waypoints, with optional Gaussian action noise."""

    def __init__(
        self, policy: WaypointPolicy, maze_map: MazeMap, n_envs: int, rng: np.random.Generator, noise: float
    ) -> None:
        self.policy, self.rng, self.noise = policy, rng, noise
        self.controller = WaypointController(maze_map, n_envs, rng)

    def start(self, mask: np.ndarray, obs: dict[str, np.ndarray]) -> None:
        self.controller.plan(mask, obs["achieved_goal"], obs["desired_goal"])

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        delta = self.controller.goal_delta(obs["achieved_goal"])
        actions = np.asarray(self.policy(obs["observation"].astype(np.float32), delta), dtype=np.float32)
        if actions.shape != (len(delta), 8):
            raise ConfigError(f"the walker policy returned actions of shape {actions.shape}, not {(len(delta), 8)}")
        if not np.isfinite(actions).all():
            raise ConfigError("the walker policy returned NaN or infinite actions")
        return add_action_noise(actions, self.rng, self.noise) if self.noise > 0 else np.clip(actions, -1.0, 1.0)


# --------------------------------------------------------------------------------------------
# Reference scores and controller success


def _upside_down(ant_obs: np.ndarray) -> np.ndarray:
    """Per env: is the torso's up axis below horizontal? (``observation[1:5]`` is its quaternion w, x, y, z)."""
    x, y = ant_obs[:, 2], ant_obs[:, 3]
    return 1.0 - 2.0 * (x * x + y * y) < 0.0


@dataclass(frozen=True)
class _Rollouts:
    """Per finished episode, in the order they ended."""

    returns: np.ndarray  # undiscounted return
    success_step: np.ndarray  # first step (1-based) whose ``success`` info is True; 0: never
    flipped: np.ndarray  # the torso was upside down at some step
    final_distance: np.ndarray  # ant x, y to the goal after the last step

    @property
    def mean_return(self) -> float:
        """minari's reference score: the float32 mean of the returns."""
        return float(np.mean(self.returns, dtype=np.float32))


def _rollouts(
    spec: Any,
    make_actor: Callable[[int], _Actor],
    episodes: int,
    n_envs: int,
    seed: int,
    vectorization: str,
    progress: Callable[[int, int], None],
) -> _Rollouts:
    """Run ``episodes`` whole episodes of ``spec`` over ``min(n_envs, episodes)`` envs.

    Episode seeds are drawn from ``seed``, one per reset in reset order; once all episodes are
    under way, envs that finish idle (reset with seed 0, not counted) until the last one ends.
    """
    n = min(n_envs, episodes)
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=episodes)
    venv = _vector_env(spec, n, vectorization)
    try:
        batch, actor = EnvBatch(venv), make_actor(n)
        returns: list[float] = []
        success_step: list[int] = []
        flips: list[bool] = []
        distance: list[float] = []
        flipped = np.zeros(n, dtype=bool)
        done_steps, total_steps = 0, episodes * spec.max_episode_steps
        for step in run_episodes(batch, actor, seeds.tolist(), idle_seed=0, on_start=actor.start):
            flipped |= _upside_down(step.obs["observation"])
            done_steps += int((step.running >= 0).sum())
            progress(min(done_steps, total_steps), total_steps)
            gap = np.linalg.norm(step.obs["achieved_goal"] - step.obs["desired_goal"], axis=-1)
            for end in step.finished:
                returns.append(end.ret)
                success_step.append(end.first_success)
                flips.append(bool(flipped[end.env]))
                distance.append(float(gap[end.env]))
            flipped[step.ended] = False
        return _Rollouts(np.array(returns), np.array(success_step), np.array(flips), np.array(distance))
    finally:
        venv.close()


def _mean_return(
    spec: Any,
    make_actor: Callable[[int], _Actor],
    episodes: int,
    n_envs: int,
    seed: int,
    vectorization: str,
    progress: Callable[[int, int], None],
) -> float:
    """Mean undiscounted return of ``episodes`` episodes in ``spec`` (minari's reference score)."""
    return _rollouts(spec, make_actor, episodes, n_envs, seed, vectorization, progress).mean_return


def _controller_actor(policy: WaypointPolicy, task: MazeTask, seed: int) -> Callable[[int], _Actor]:
    """The noise-free controller of the eval env: ``ref_max_score``'s actor, and controller_success's."""
    return lambda n: _WalkerActor(policy, eval_map(task), n, np.random.default_rng([seed, 2]), noise=0.0)


def controller_success(
    task: str | MazeTask,
    policy: WaypointPolicy,
    episodes: int = 50,
    seed: int = 0,
    n_envs: int = DEFAULT_N_ENVS,
    progress: Progress | None = None,
    *,
    vectorization: str = DEFAULT_VECTORIZATION,
) -> dict[str, Any]:
    """How often the noise-free controller steering ``policy`` reaches the goal of ``task``'s eval env.

    ``episodes`` episodes from the fixed eval start to the fixed eval goal (:func:`mazes.eval_spec`),
    each ``max_episode_steps`` long; an episode succeeds when the env's ``success`` info (ant within
    0.45 of the goal) is True after any of its steps. They are the episodes behind ``ref_max_score``:
    with the ``seed``, ``n_envs`` and ``episodes`` (``ref_episodes``) of a :func:`generate` call,
    ``mean_return`` is that dataset's ``ref_max_score``. Deterministic for given ``seed`` and ``n_envs``.
    Progress is reported as phase "ref-controller". Returns a JSON-ready dict: ``success_rate``,
    ``mean_return``, ``mean_steps_to_success`` (over the successes; None without one), and
    diagnostics: ``steps_to_success`` per episode (None: failed), ``flipped`` (episodes whose ant
    was upside down at some step) and ``failed_flipped``, and the mean final distance to the goal.
    """
    spec_task = get_task(task) if isinstance(task, str) else task
    for name, value in (("episodes", episodes), ("n_envs", n_envs)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    report = progress or (lambda phase, done, total: None)
    spec = eval_spec(spec_task)
    out = _rollouts(
        spec,
        _controller_actor(policy, spec_task, seed),
        episodes,
        n_envs,
        seed + 2,  # generate's seeding of the ref-controller episodes
        vectorization,
        functools.partial(report, "ref-controller"),
    )
    success = out.success_step > 0
    return {
        "task": spec_task.name,
        "env_id": spec_task.env_id,
        "eval_start": list(spec_task.eval_start),
        "eval_goal": list(spec_task.eval_goal),
        "max_episode_steps": spec.max_episode_steps,
        "episodes": episodes,
        "seed": seed,
        "n_envs": min(n_envs, episodes),
        "successes": int(success.sum()),
        "success_rate": float(success.mean()),
        "mean_return": out.mean_return,
        "mean_steps_to_success": float(out.success_step[success].mean()) if success.any() else None,
        "steps_to_success": [int(s) if s > 0 else None for s in out.success_step],
        "flipped": int(out.flipped.sum()),
        "failed_flipped": int((out.flipped & ~success).sum()),
        "mean_final_distance": float(out.final_distance.mean()),
        "mean_final_distance_failed": float(out.final_distance[~success].mean()) if (~success).any() else None,
    }


# --------------------------------------------------------------------------------------------
# Collection


class _Stats:
    """What the summary and the visitation plot need, accumulated chunk by chunk."""

    def __init__(self, shape: tuple[int, int]) -> None:
        rows, cols = shape
        half_x, half_y = cols * MAZE_SIZE_SCALING / 2, rows * MAZE_SIZE_SCALING / 2
        self.x_edges = np.linspace(-half_x, half_x, cols * _BINS_PER_CELL + 1)
        self.y_edges = np.linspace(-half_y, half_y, rows * _BINS_PER_CELL + 1)
        self.visits = np.zeros((len(self.x_edges) - 1, len(self.y_edges) - 1))
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.successes: list[bool] = []

    def add(self, episode: Any) -> None:
        xy = episode.observations["achieved_goal"][:-1]
        self.visits += np.histogram2d(xy[:, 0], xy[:, 1], bins=(self.x_edges, self.y_edges))[0]
        self.returns.append(float(np.sum(episode.rewards)))
        self.lengths.append(len(episode.rewards))
        self.successes.append(bool(episode.infos["success"][1:].any()))


def _episode_buffer(
    episode_id: int,
    seed: int,
    obs: dict[str, np.ndarray],
    final_obs: dict[str, np.ndarray],
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
    success: np.ndarray,
) -> Any:
    """One minari EpisodeBuffer; an episode that did not terminate ends truncated."""
    from minari.data_collector import EpisodeBuffer

    observations = {k: np.concatenate([v, final_obs[k][None]]) for k, v in obs.items()}
    truncations = truncations.copy()
    truncations[-1] |= not terminations[-1]
    ant = observations["observation"]
    infos = {
        "success": success,
        "goal": observations["desired_goal"].copy(),
        "qpos": np.concatenate([observations["achieved_goal"], ant[:, :13]], axis=1),
        "qvel": ant[:, 13:].copy(),
    }
    return EpisodeBuffer(
        id=episode_id,
        seed=seed,
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminations=terminations.copy(),
        truncations=truncations,
        infos=infos,
    )


def _collect_chunk(
    batch: EnvBatch,
    actor: _Actor,
    chunk_steps: int,
    seeds: Iterator[int],
    episode_ids: Iterator[int],
    progress: Callable[[int], None],
) -> list[Any]:
    """Collect ``chunk_steps`` transitions split evenly over the envs; every episode ends inside it.

    All envs are reset first; every reset takes the next of ``seeds``, in env order."""
    n = batch.n
    quota = chunk_steps // n + (np.arange(n) < chunk_steps % n)
    rows = int(quota.max())
    actions = np.empty((rows, n, 8), dtype=np.float32)
    rewards = np.empty((rows, n))
    terminations = np.empty((rows, n), dtype=bool)
    truncations = np.empty((rows, n), dtype=bool)
    success = np.empty((rows, n), dtype=bool)
    first_row = np.zeros(n, dtype=np.int64)
    everyone = np.ones(n, dtype=bool)  # an env without quota (tiny last chunk) idles, unrecorded
    env_seeds = _next_seeds(seeds, everyone)
    batch.reset(env_seeds.tolist())
    actor.start(everyone, batch.obs)
    obs = {k: np.empty((rows, *v.shape)) for k, v in batch.obs.items()}
    episodes = []
    for t in range(rows):
        for key, value in batch.obs.items():
            obs[key][t] = value
        success[t] = batch.success
        actions[t] = actor(batch.obs)
        rewards[t], terminations[t], truncations[t] = batch.step(actions[t])
        progress(int(np.minimum(quota, t + 1).sum()))
        ended = (terminations[t] | truncations[t] | (t + 1 == quota)) & (t < quota)
        for i in np.flatnonzero(ended):
            span = slice(first_row[i], t + 1)
            episodes.append(
                _episode_buffer(
                    next(episode_ids),
                    int(env_seeds[i]),
                    {k: v[span, i] for k, v in obs.items()},
                    {k: v[i] for k, v in batch.obs.items()},
                    actions[span, i],
                    rewards[span, i],
                    terminations[span, i],
                    truncations[span, i],
                    np.append(success[span, i], batch.success[i]),
                )
            )
        again = ended & (t + 1 < quota)
        if again.any():
            new_seeds = _next_seeds(seeds, again)
            batch.reset(new_seeds.tolist(), again)
            env_seeds = np.where(again, new_seeds, env_seeds)
            actor.start(again, batch.obs)
            first_row[again] = t + 1
    return episodes


def _next_seeds(seeds: Iterator[int], mask: np.ndarray) -> np.ndarray:
    """The next of ``seeds`` for each env in ``mask``, in env order (-1 outside it)."""
    return np.array([next(seeds) if m else -1 for m in mask], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Plot


def plot_visitation(visits: np.ndarray, task: MazeTask, path: Path, title: str) -> Path:
    """Heat map of x, y visits (log scale) over the maze walls, with the eval start and goal."""
    from fdivrl.analysis.plots import _pyplot

    plt = _pyplot()
    maze = eval_map(task)
    rows, cols = map_shape(maze)
    half_x, half_y = cols * MAZE_SIZE_SCALING / 2, rows * MAZE_SIZE_SCALING / 2
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.7 * cols), 0.6 + 0.7 * rows))
    image = ax.imshow(np.log1p(visits.T), origin="lower", extent=(-half_x, half_x, -half_y, half_y), cmap="viridis")
    half = MAZE_SIZE_SCALING / 2
    for i, row in enumerate(maze):
        for j, cell in enumerate(row):
            if cell == 1:
                x, y = cell_to_xy(np.array([i, j]), (rows, cols))
                ax.add_patch(plt.Rectangle((x - half, y - half), 2 * half, 2 * half, color="0.35"))
    for cell, marker, label in ((task.eval_start, "o", "eval start"), (task.eval_goal, "*", "eval goal")):
        x, y = cell_to_xy(np.array(cell), (rows, cols))
        ax.plot(x, y, marker, color="red", markersize=12, markeredgecolor="white", label=label)
    ax.set(xlim=(-half_x, half_x), ylim=(-half_y, half_y), xlabel="x", ylabel="y")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    fig.colorbar(image, ax=ax, label="log(1 + visits)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Public entry point


def _check_args(dataset_id: str, steps: int, n_envs: int, ref_episodes: int, checkpoint_interval: int) -> None:
    if not _ID_RE.match(dataset_id):
        raise ConfigError(f"malformed dataset id '{dataset_id}'; expected namespace/name-v<version>")
    if dataset_id.startswith("D4RL/"):
        raise ConfigError(f"'{dataset_id}' is in the D4RL/ namespace; local stand-ins must not impersonate it")
    for name, value in (
        ("steps", steps),
        ("n_envs", n_envs),
        ("ref_episodes", ref_episodes),
        ("checkpoint_interval", checkpoint_interval),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")


def _summary(stats: _Stats, **fields: Any) -> dict[str, Any]:
    returns = np.asarray(stats.returns)
    names = ("min", "p10", "p25", "p50", "p75", "p90", "max")
    quantiles = np.percentile(returns, [0, 10, 25, 50, 75, 90, 100])
    return {
        **fields,
        "episodes": len(returns),
        "success_fraction": float(np.mean(stats.successes)),
        "rewarded_fraction": float(returns.sum() / max(sum(stats.lengths), 1)),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_quantiles": dict(zip(names, quantiles.tolist(), strict=True)),
        "episode_length_mean": float(np.mean(stats.lengths)),
    }


def generate(
    task: str | MazeTask,
    steps: int,
    seed: int,
    policy: WaypointPolicy,
    dataset_id: str | None = None,
    n_envs: int = DEFAULT_N_ENVS,
    progress: Progress | None = None,
    *,
    overwrite: bool = False,
    ref_episodes: int = REF_EPISODES,
    plot_path: str | Path | None = None,
    vectorization: str = DEFAULT_VECTORIZATION,
    action_noise: float = ACTION_NOISE,
    checkpoint_interval: int = CHECKPOINT_INTERVAL,
    policy_name: str = "walker",
) -> dict[str, Any]:
    """Collect ``steps`` transitions of ``task`` with ``policy`` and write them as a minari dataset.

    The id defaults to ``fdivrl/antmaze/<task>-v1``; an existing id raises DatasetError unless
    ``overwrite`` (the old dataset is then replaced once the new one is complete). The dataset is
    written in a locked staging root and moved into place at the end, so a failed or killed run
    leaves no partial dataset and a second generator of the same id stops with a DatasetError.
    Reference scores come first (``2 · ref_episodes`` eval episodes), then collection; the visitation
    PNG goes to ``plot_path`` or ``<dataset dir>/visitation.png``. Returns a JSON-ready summary.
    """
    spec_task = get_task(task) if isinstance(task, str) else task
    dataset_id = dataset_id or spec_task.dataset_id
    _check_args(dataset_id, steps, n_envs, ref_episodes, checkpoint_interval)
    path = dataset_dir(dataset_id)
    with _staging(dataset_id) as staging_root:
        if path.exists() and not overwrite:
            raise DatasetExists(
                f"dataset '{dataset_id}' already exists at {path}; pass --overwrite (overwrite=True) to replace it"
            )
        with _datasets_root(staging_root):
            job = _Job(
                task=spec_task,
                dataset_id=dataset_id,
                steps=steps,
                seed=seed,
                policy=policy,
                n_envs=n_envs,
                ref_episodes=ref_episodes,
                vectorization=vectorization,
                action_noise=action_noise,
                checkpoint_interval=checkpoint_interval,
                policy_name=policy_name,
            )
            summary = _generate(job, progress)
        try:
            _move_into_place(staging_root, dataset_id, datasets_root())
        except OSError as err:
            raise DatasetError(f"could not move '{dataset_id}' to {path} ({err}); nothing there was changed") from None
    summary["dataset_path"] = str(path)
    title = (
        f"{dataset_id}\n{steps} steps, {summary['episodes']} episodes, "
        f"{100 * summary['success_fraction']:.0f}% reach the goal"
    )
    plot = Path(plot_path) if plot_path else path / VISITATION_FILE
    png = plot_visitation(summary.pop("_visits"), spec_task, plot, title)
    summary["visitation_png"] = str(png)
    return summary


class GenerationBusy(DatasetError):
    """Another process is generating the same dataset id."""


class DatasetExists(DatasetError):
    """The dataset id is already present (and overwrite was not asked for)."""


STAGING_DIR = ".fdivrl-staging"
"""Hidden directory inside the minari root (minari and fdivrl skip dot-directories when listing), so
a finished dataset moves into place with one rename on the same filesystem."""


@contextlib.contextmanager
def _staging(dataset_id: str) -> Iterator[Path]:
    """An empty private minari root inside the real one, locked for this dataset id.

    The dataset is written there and renamed into place only when complete, so no reader ever sees
    a partial stand-in (a killed run leaves its files here, cleared by the next generator of the
    id); the lock makes a second generator of the same id stop at once instead of interleaving."""
    from fdivrl.runs.lock import RunLock, RunLocked

    base = datasets_root() / STAGING_DIR
    slug = dataset_id.replace("/", "__")
    staging_root = base / slug
    try:
        base.mkdir(parents=True, exist_ok=True)
        lock = RunLock(base / f"{slug}.lock").acquire()
    except RunLocked:
        raise GenerationBusy(
            f"dataset '{dataset_id}' is being generated by another fdivrl process; wait for it to finish"
        ) from None
    except OSError as err:
        raise DatasetError(f"cannot write datasets under {datasets_root()}: {err}") from None
    try:
        shutil.rmtree(staging_root, ignore_errors=True)  # what a killed generator left
        staging_root.mkdir()
        yield staging_root
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        lock.release()


def _move_into_place(staging_root: Path, dataset_id: str, root: Path) -> None:
    """Rename the finished dataset from ``staging_root`` to ``root``; an old one of the same id is
    swapped out first and deleted only once the new one is in place (put back if the rename fails).
    minari's namespace records that the root lacks are carried over too."""
    new, path = staging_root / dataset_id, root / dataset_id
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        record = Path(*parts[:depth]) / "namespace_metadata.json"
        if (staging_root / record).is_file() and not (root / record).exists():
            shutil.copyfile(staging_root / record, root / record)
    old = staging_root / ".replaced"
    if path.exists():
        os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        if old.exists() and not path.exists():
            os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Point minari (which reads $MINARI_DATASETS_PATH on every call) at ``root`` for a while."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


@dataclass(frozen=True)
class _Job:
    """What one :func:`generate` call collects (its arguments, checked and resolved)."""

    task: MazeTask
    dataset_id: str
    steps: int
    seed: int
    policy: WaypointPolicy
    n_envs: int
    ref_episodes: int
    vectorization: str
    action_noise: float
    checkpoint_interval: int
    policy_name: str


def _generate(job: _Job, progress: Progress | None) -> dict[str, Any]:
    """Reference scores, then collection into minari's current root; the summary keeps the
    visitation counts under ``_visits`` for the caller's plot."""
    import minari

    report = progress or (lambda phase, done, total: None)
    task, seed, steps = job.task, job.seed, job.steps
    collect_spec, reference_spec = collection_spec(task), eval_spec(task)

    ref_min = _mean_return(
        reference_spec,
        lambda n: _RandomActor(n, np.random.default_rng([seed, 1])),
        job.ref_episodes,
        job.n_envs,
        seed + 1,
        job.vectorization,
        functools.partial(report, "ref-random"),
    )
    ref_max = _mean_return(
        reference_spec,
        _controller_actor(job.policy, task, seed),
        job.ref_episodes,
        job.n_envs,
        seed + 2,
        job.vectorization,
        functools.partial(report, "ref-controller"),
    )

    stats = _Stats(map_shape(train_map(task)))
    dataset = None
    started = time.perf_counter()
    n_envs = min(job.n_envs, steps)
    venv = _vector_env(collect_spec, n_envs, job.vectorization)
    try:
        batch = EnvBatch(venv)
        actor = _WalkerActor(job.policy, train_map(task), n_envs, np.random.default_rng([seed, 0]), job.action_noise)
        seeds, episode_ids = itertools.count(seed), itertools.count()
        for first in range(0, steps, job.checkpoint_interval):
            chunk = min(job.checkpoint_interval, steps - first)
            episodes = _collect_chunk(
                batch,
                actor,
                chunk,
                seeds,
                episode_ids,
                lambda done, first=first: report("collect", first + done, steps),
            )
            for episode in episodes:
                stats.add(episode)
            if dataset is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "AntMaze v4 is out of date"
                    dataset = minari.create_dataset_from_buffers(
                        job.dataset_id,
                        episodes,
                        env=collect_spec,
                        eval_env=reference_spec,
                        algorithm_name=f"BFS+{job.policy_name}",
                        author="fdivrl",
                        author_email="fdivrl@localhost",
                        code_permalink="fdivrl.data.antmaze.generator (local AntMaze stand-in generator)",
                        ref_min_score=ref_min,
                        ref_max_score=ref_max,
                        num_episodes_average_score=job.ref_episodes,
                        description=(
                            f"Local stand-in for {task.d4rl_id}, NOT the real data: {steps} steps of "
                            f"{job.policy_name} + BFS waypoints + N(0, {job.action_noise}²) noise in {task.env_id}, "
                            "collected like minari's v1 script (fdivrl.data.antmaze.generator)."
                        ),
                        requirements=[
                            f"gymnasium-robotics>={importlib.metadata.version('gymnasium-robotics')}",
                            f"mujoco>={importlib.metadata.version('mujoco')}",
                        ],
                    )
            else:
                dataset.storage.update_episodes(episodes)
    finally:
        venv.close()
    seconds = time.perf_counter() - started

    summary = _summary(
        stats,
        dataset_id=job.dataset_id,
        task=task.name,
        env_id=task.env_id,
        steps=steps,
        seed=seed,
        n_envs=n_envs,
        vectorization=job.vectorization,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        ref_episodes=job.ref_episodes,
        collect_seconds=seconds,
        collect_steps_per_s=steps / seconds,
    )
    return {**summary, "_visits": stats.visits}
