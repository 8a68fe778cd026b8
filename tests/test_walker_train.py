"""walker_training.measure: the walker's quality bar, measured with the waypoint controller in AntMaze."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import pytest

from fdivrl.data.antmaze import generator as antmaze_gen
from fdivrl.data.antmaze import mazes, walker
from fdivrl.data.antmaze import walker_training as W
from fdivrl.learning.networks import Actor


def test_measure_runs_both_bar_tasks_with_a_random_walker(tmp_path: Path):
    params = Actor(W.WALKER_HIDDEN, walker.ACT_DIM).init(jax.random.key(0), jnp.zeros((1, walker.OBS_DIM)))["params"]
    path = walker.save_walker(tmp_path / "w.npz", params, W.WALKER_HIDDEN, False, {"command": "test"})
    calls: list[tuple[str, int, int]] = []
    results = W.measure(walker.load_walker(path), episodes=1, n_envs=1, progress=lambda *call: calls.append(call))
    assert W.QUALITY_BAR == {"umaze": 0.8, "medium-play": 0.6}
    assert list(results) == list(W.QUALITY_BAR)
    for task, result in results.items():
        spec = mazes.get_task(task)
        assert result["task"] == task and result["env_id"] == spec.env_id and result["episodes"] == 1
        assert result["max_episode_steps"] == spec.max_episode_steps
        assert result["bar"] == W.QUALITY_BAR[task] and result["meets_bar"] == (result["success_rate"] >= result["bar"])
        assert result["success_rate"] in (0.0, 1.0) and len(result["steps_to_success"]) == 1
    assert results["medium-play"]["eval_start"] == [1, 1] and results["medium-play"]["eval_goal"] == [6, 6]
    assert calls[-1][1:] == (1000, 1000)
    json.dumps(results)


def test_measure_compares_each_task_with_its_bar(monkeypatch: pytest.MonkeyPatch):
    rates = {"umaze": 0.8, "medium-play": 0.55, "large-play": 0.1}
    seen: list[tuple[Any, ...]] = []

    def fake(task: str, policy: Any, episodes: int, seed: int, n_envs: int, progress: Any) -> dict[str, Any]:
        seen.append((task, policy, episodes, seed, n_envs))
        return {"task": task, "success_rate": rates[task]}

    monkeypatch.setattr(antmaze_gen, "controller_success", fake)
    results = W.measure("policy", episodes=7, seed=3, tasks=("umaze", "medium-play", "large-play"), n_envs=2)
    assert seen == [(task, "policy", 7, 3, 2) for task in rates]
    assert {task: (r["bar"], r["meets_bar"]) for task, r in results.items()} == {
        "umaze": (0.8, True),  # the bar itself passes
        "medium-play": (0.6, False),
        "large-play": (None, None),  # no bar for this task
    }
