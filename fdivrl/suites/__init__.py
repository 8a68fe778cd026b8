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
