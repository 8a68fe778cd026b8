"""Benchmark suites and published scores as data, shipped in the wheel: one source for the tasks,
their per-task hyperparameters (read by the presets) and the reference columns of bench tables."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from fdivrl.errors import ConfigError

DIR = Path(__file__).resolve().parent
NAMES = tuple(sorted(p.stem for p in DIR.glob("*.json") if p.stem != "reference_scores"))
"""The benchmark suites (antmaze, mujoco)."""


@functools.cache
def read(name: str) -> dict[str, Any]:
    """`<name>.json` of this folder, parsed (antmaze, mujoco, reference_scores)."""
    path = DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({' '.join(str(exc).split())}); reinstall fdivrl") from exc


def hyperparameters(suite: str, mode: str) -> dict[str, dict[str, float]]:
    """Task -> the divergence settings a suite gives it for `mode` (tasks without them left out)."""
    return {t["task"]: dict(t["hyperparameters"][mode]) for t in read(suite)["tasks"] if mode in t["hyperparameters"]}


def _holding(task_id: str) -> list[dict[str, Any]]:
    """The suites that list `task_id` as a task's dataset, stand-in or env."""
    every = [read(n) for n in NAMES]
    return [s for s in every if any(task_id in (t.get("dataset"), t.get("standin"), t.get("env")) for t in s["tasks"])]


def reward_range(task_id: str) -> tuple[float, float] | None:
    """(lowest, highest) reward the task's data can hold before any shift, when its suite states it
    (AntMaze's sparse 0/1); None otherwise (MuJoCo's rewards have no fixed bounds)."""
    for suite in _holding(task_id):
        if "rewards" in suite:
            low, high = suite["rewards"]
            return float(low), float(high)
    return None


def metric_of(task_id: str, mode: str) -> str | None:
    """The score fdivrl ranks a run by: its task's suite's (`task_id`: a dataset, stand-in or env id), else
    that of the suite `fdivrl bench` trains `mode` in (any dataset offline: AntMaze's success; any env
    online: MuJoCo's return); None when no suite has either.

    The metric belongs to the task, not to what a run logged: evaluations made before fdivrl left
    success out on envs without a goal stored a meaningless success rate of 0 there (Hopper).
    """
    trains_mode = [s for s in map(read, NAMES) if mode in s["modes"]]
    return next((str(s["metric"]) for s in _holding(task_id) + trains_mode), None)
