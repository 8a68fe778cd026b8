"""Whether a run's value estimates stayed where a return can be: the check a score needs besides
the priority-activity rule before it says anything about a per_type.

With rewards in [r_lo, r_hi] and discount γ, every discounted return, and so every true Q and V,
lies in [min(r_lo, r_lo/(1−γ)), max(r_hi, r_hi/(1−γ))]. A learner whose batch-mean Q leaves that
range by more than the range's own width has diverged: its evaluations measure the divergence
(medium-play's quick learner went from −17 to +19,517 on AntMaze, where Q lies in [−100, 0]).
Pure functions of metrics rows and a run's config, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fdivrl import suites

RULE = "diverged: a seed's mean Q left the range of possible returns by more than that range's width"


def return_range(r_lo: float, r_hi: float, discount: float) -> tuple[float, float]:
    """Bounds of any discounted return of rewards in [r_lo, r_hi] (episodes of any length ≥ 1)."""
    horizon = 1.0 / (1.0 - discount)
    return min(r_lo, r_lo * horizon), max(r_hi, r_hi * horizon)


def bounds_of(task: str, config: Mapping[str, Any]) -> tuple[float, float] | None:
    """The return range of a run on `task` (its dataset or env id, results.task_of): the task's reward
    range (its suite's) plus the reward shift the config trained with, at its discount; None when the
    task's rewards have no stated bounds."""
    rewards = suites.reward_range(task)
    if rewards is None:
        return None
    shift = float((config.get("data") or {}).get("reward_shift", config.get("reward_shift") or 0.0))
    discount = float((config.get("learner") or {}).get("discount", 0.99))
    return return_range(rewards[0] + shift, rewards[1] + shift, discount)


def status(diverged: Iterable[bool]) -> str:
    """'bounded', 'diverged', 'diverged in k/n seeds', or 'not measured' (no seed measured)."""
    flags = list(diverged)
    if not flags:
        return "not measured"
    if not any(flags):
        return "bounded"
    return "diverged" if all(flags) else f"diverged in {sum(flags)}/{len(flags)} seeds"


def check(rows: list[Mapping[str, Any]], bounds: tuple[float, float] | None) -> dict[str, Any]:
    """Per seed: the first logged step whose mean Q left the allowed band (None: never) and the
    furthest its mean Q went; the run's status ("bounded", "diverged", "diverged in k/n seeds" or
    "not measured": no bounds, or no q_mean logged)."""
    per_seed: dict[int, dict[str, Any]] = {}
    if bounds is not None:
        lo, hi = bounds
        width = hi - lo
        for r in sorted(rows, key=lambda r: r.get("step", 0)):
            q = r.get("q_mean")
            if "seed" not in r or not isinstance(q, int | float):
                continue
            seed = per_seed.setdefault(int(r["seed"]), {"seed": int(r["seed"]), "diverged_at": None, "q_extreme": q})
            if abs(q - (lo + hi) / 2) > abs(seed["q_extreme"] - (lo + hi) / 2):
                seed["q_extreme"] = float(q)
            if seed["diverged_at"] is None and not lo - width <= q <= hi + width:
                seed["diverged_at"] = int(r["step"])
    return {
        "rule": RULE,
        "status": status(s["diverged_at"] is not None for s in per_seed.values()),
        "return_range": list(bounds) if bounds else None,
        "per_seed": [per_seed[s] for s in sorted(per_seed)],
    }


def describe(values: Mapping[str, Any]) -> list[str]:
    """Terminal lines: nothing when the values stayed bounded or were not measured."""
    if not str(values.get("status", "")).startswith("diverged"):
        return []
    lo, hi = values["return_range"]
    seeds = [
        f"seed {s['seed']} at step {s['diverged_at']:,} (mean Q reached {s['q_extreme']:,.0f})"
        for s in values.get("per_seed", [])
        if s.get("diverged_at") is not None
    ]
    return [
        f"values {values['status']}: returns lie in [{lo:g}, {hi:g}], but {'; '.join(seeds)}. "
        "Its scores measure the divergence, not the per_type."
    ]
