"""Whether a run's value estimates stayed where a return can be: the check a score needs besides
the priority-activity rule before it says anything about a per_type.

With rewards in [r_lo, r_hi] and discount γ, every discounted return, and so every true Q and V,
lies in [min(r_lo, r_lo/(1−γ)), max(r_hi, r_hi/(1−γ))]. A learner whose batch-mean Q leaves that
range by more than the range's own width has diverged: its evaluations measure the divergence
(medium-play's quick learner went from −17 to +19,517 on AntMaze, where Q lies in [−100, 0]). One
that leaves it by less (OUT_MARGIN of the width) is out of range: not exploded, but estimating
returns no policy can have (medium-play's LayerNorm critics reached +35 at 270k steps, under uniform
replay too), so its scores come from values that are off and deserve that mark beside them.
Pure functions of metrics rows and a run's config, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fdivrl import suites

OUT_MARGIN = 0.02
"""Slack, as a share of the range's width, before a mean Q counts as out of range: a fresh network's
outputs and the batch noise of a mean near a bound are not an error worth a mark."""
RULE = (
    "diverged: a seed's mean Q left the range of possible returns by more than that range's width; "
    f"out of range: by more than {OUT_MARGIN:.0%} of it but not that far"
)


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


def status(diverged: Iterable[bool], left: Iterable[bool]) -> str:
    """'bounded', 'diverged', 'diverged in k/n seeds', 'out of range', 'out of range in k/n seeds', or
    'not measured' (no seed measured). `diverged` and `left` hold one flag per seed (left: out of range
    at some step); a divergence outranks an excursion."""
    flags, outs = list(diverged), list(left)
    if not flags:
        return "not measured"
    for word, marks in (("diverged", flags), ("out of range", outs)):
        if any(marks):
            return word if all(marks) else f"{word} in {sum(marks)}/{len(flags)} seeds"
    return "bounded"


def check(rows: list[Mapping[str, Any]], bounds: tuple[float, float] | None) -> dict[str, Any]:
    """Per seed: the first logged step whose mean Q left the range by more than OUT_MARGIN of its width
    (`left_at`) and by more than the width (`diverged_at`; None: never), and the furthest its mean Q
    went; the run's status (see `status`; "not measured": no bounds, or no q_mean logged). Under
    --clip-targets also each seed's last logged fraction of TD targets the clip cut (`target_clip_frac`,
    in seed order, with or without bounds), since values kept in range by the clip are bounded by
    construction."""
    per_seed: dict[int, dict[str, Any]] = {}
    ordered = sorted(rows, key=lambda r: r.get("step", 0))
    if bounds is not None:
        lo, hi = bounds
        width = hi - lo
        for r in ordered:
            q = r.get("q_mean")
            if "seed" not in r or not isinstance(q, int | float):
                continue
            seed = per_seed.setdefault(
                int(r["seed"]), {"seed": int(r["seed"]), "left_at": None, "diverged_at": None, "q_extreme": q}
            )
            if abs(q - (lo + hi) / 2) > abs(seed["q_extreme"] - (lo + hi) / 2):
                seed["q_extreme"] = float(q)
            for key, slack in (("left_at", OUT_MARGIN * width), ("diverged_at", width)):
                if seed[key] is None and not lo - slack <= q <= hi + slack:
                    seed[key] = int(r["step"])
    clipped = {
        int(r["seed"]): float(r["target_clip_frac"])
        for r in ordered
        if "seed" in r and isinstance(r.get("target_clip_frac"), int | float)
    }
    return {
        "rule": RULE,
        "status": seeds_status(per_seed.values()),
        "return_range": list(bounds) if bounds else None,
        "per_seed": [per_seed[s] for s in sorted(per_seed)],
        **({"target_clip_frac": [clipped[s] for s in sorted(clipped)]} if clipped else {}),
    }


def seeds_status(per_seed: Iterable[Mapping[str, Any]]) -> str:
    """`status` of check's per-seed records."""
    seeds = list(per_seed)
    return status((s.get("diverged_at") is not None for s in seeds), (s.get("left_at") is not None for s in seeds))


def describe(values: Mapping[str, Any]) -> list[str]:
    """Terminal lines: nothing when the values stayed bounded or were not measured."""
    status_ = str(values.get("status", ""))
    diverged = status_.startswith("diverged")
    if not diverged and not status_.startswith("out of range"):
        return []
    lo, hi = values["return_range"]
    key = "diverged_at" if diverged else "left_at"
    seeds = [
        f"seed {s['seed']} at step {s[key]:,} (mean Q reached {s['q_extreme']:,.0f})"
        for s in values.get("per_seed", [])
        if s.get(key) is not None
    ]
    meaning = (
        "Its scores measure the divergence, not the per_type."
        if diverged
        else "Its scores come from value estimates no policy's returns can have."
    )
    return [f"values {status_}: returns lie in [{lo:g}, {hi:g}], but {'; '.join(seeds)}. {meaning}"]
