"""`fdivrl data walker`: the goal-reaching ant, trained by the ordinary online pipeline and exported.

The walker is one `train --mode online` run on fdivrl/GoalReachAnt-v0 (plain SAC: per_type uniform,
no gradient penalty) whose final actor is written to the package's walker file, so the shipped
weights are reproducible by this one command. :func:`measure` checks it against `QUALITY_BAR`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fdivrl import config as C
from fdivrl.data.antmaze import generator as antmaze_gen
from fdivrl.data.antmaze import walker
from fdivrl.data.antmaze.planner import WaypointPolicy
from fdivrl.errors import FdivrlError
from fdivrl.learning.networks import Actor
from fdivrl.runs.checkpoint import latest_checkpoint

WALKER_STEPS = 1_000_000
WALKER_HIDDEN = (256, 256)
QUALITY_BAR = {"umaze": 0.8, "medium-play": 0.6}
"""The walker is good enough when the noise-free waypoint controller steering it reaches the eval goal
in at least this fraction of the eval episodes of each task (:func:`measure`)."""


def walker_config(steps: int = WALKER_STEPS, seed: int = 0) -> C.TrainConfig:
    """The walker's training run: ROER's online SAC defaults on the goal-reaching env."""
    return C.with_overrides(
        C.preset_config("paper", None, "uniform", mode="online", env=walker.ENV_ID),
        top={"steps": steps, "seeds": (seed,), "eval_every": 25_000, "eval_episodes": 5, "final_eval_episodes": 10},
        learner={"hidden": WALKER_HIDDEN, "grad_penalty": 0.0},
        online={"checkpoint_every": 25_000, "buffer_size": min(steps, 1_000_000)},
    )


def actor_params(run_dir: Path, hidden: tuple[int, ...] = WALKER_HIDDEN) -> tuple[Any, int]:
    """The (single) seed's actor parameters in a run's newest checkpoint, and its step."""
    ckpt = latest_checkpoint(Path(run_dir) / "checkpoints")
    if ckpt is None:
        raise FdivrlError(f"{run_dir} holds no readable checkpoint to export a walker from")
    template = Actor(hidden, walker.ACT_DIM).init(jax.random.PRNGKey(0), np.zeros((1, walker.OBS_DIM), np.float32))
    one_seed = jax.tree_util.tree_map(lambda x: np.zeros((1, *x.shape), x.dtype), template)  # runs stack seeds
    try:
        params = ckpt.restore(one_seed, prefix="['state'].actor.params")
    except FdivrlError as err:
        raise FdivrlError(f"not a one-seed walker run of hidden {hidden}: {err}") from None
    return jax.tree_util.tree_map(lambda x: x[0], params), ckpt.step


def export(run_dir: Path, path: Path, record: dict[str, Any], measure_episodes: int = 0) -> Path:
    """Write the run's newest actor as a walker file; with ``measure_episodes`` > 0 its record also
    holds :func:`measure`'s success per task (the figures a user reads before trusting it)."""
    params, step = actor_params(run_dir)
    record = {**record, "checkpoint_step": step}
    if measure_episodes > 0:
        policy = walker.WalkerPolicy(params["params"], WALKER_HIDDEN, False, record, walker.GOAL_CLIP)
        keep = ("success_rate", "episodes", "seed", "bar", "meets_bar", "mean_steps_to_success", "flipped")
        measured = measure(policy, episodes=measure_episodes)
        record["measured"] = {task: {key: result[key] for key in keep} for task, result in measured.items()}
    return walker.save_walker(path, params["params"], WALKER_HIDDEN, False, record)


def measure(
    policy: WaypointPolicy,
    episodes: int = 50,
    seed: int = 0,
    tasks: Sequence[str] = ("umaze", "medium-play"),
    n_envs: int = antmaze_gen.DEFAULT_N_ENVS,
    progress: antmaze_gen.Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """The walker's quality: :func:`fdivrl.data.antmaze.generator.controller_success` per task, with its bar.

    Each task's dict gains ``bar`` (its `QUALITY_BAR` entry, None for a task without one) and
    ``meets_bar`` (success_rate ≥ bar; None without a bar).
    """
    results = {}
    for task in tasks:
        result = antmaze_gen.controller_success(task, policy, episodes, seed, n_envs, progress)
        bar = QUALITY_BAR.get(task)
        results[task] = {**result, "bar": bar, "meets_bar": None if bar is None else result["success_rate"] >= bar}
    return results
