"""Whether a run's priorities acted: the rule every table applies before it ranks a per_type.

A prioritized run whose stored weights (or sampling priorities) stayed as good as uniform trained
with uniform replay, whatever its per_type says: weights pinned at a floor, or an EMA that barely
moved, give a score that says nothing about the per_type. The measure is the ESS fraction of the
stored weights, (Σw)² / (N·Σw²), which is 1 for uniform replay; a run whose final ESS fraction is
at least ESS_INACTIVE is reported `inactive` (docs/presets.md shows what it was chosen from).
Pure functions of metrics rows, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ESS_INACTIVE = 0.98
"""Final ESS fraction at or above which a prioritized run counts as uniform replay. 0.98 is a
coefficient of variation of the weights of 0.14: a weight spread that small moves a loss by ~1%."""
RULE = f"inactive: final ESS fraction (Σw)²/(N·Σw²) of the stored priorities >= {ESS_INACTIVE}"

FIELDS = {
    "ess_frac": "priority_ess_frac",
    "floor_frac": "priority_floor_frac",
    "cap_frac": "priority_cap_frac",
    "loss_weight_cv": "loss_weight_cv",
}
"""Activity field -> the metrics.jsonl key it is read from (the last record of each seed)."""


def seed_record(row: Mapping[str, Any]) -> dict[str, float]:
    """The activity fields of one seed's last metrics record (those it has)."""
    return {k: float(row[src]) for k, src in FIELDS.items() if isinstance(row.get(src), int | float)}


def seed_inactive(record: Mapping[str, float]) -> bool | None:
    """True when the seed's priorities stayed uniform by the rule; None when it was not measured."""
    ess = record.get("ess_frac")
    return None if ess is None else ess >= ESS_INACTIVE


def status(prioritized: bool, per_seed: Mapping[int, Mapping[str, float]]) -> str:
    """'uniform' (a per_type without priorities), 'active', 'inactive', 'inactive in k/n seeds', or
    'not measured' (a run written before fdivrl logged the ESS fraction)."""
    if not prioritized:
        return "uniform"
    flags = [f for f in (seed_inactive(r) for r in per_seed.values()) if f is not None]
    if not flags:
        return "not measured"
    k = sum(flags)
    if k == 0:
        return "active"
    return "inactive" if k == len(flags) else f"inactive in {k}/{len(flags)} seeds"


def last_rows(rows: list[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Each seed's last metrics record (by step)."""
    out: dict[int, Mapping[str, Any]] = {}
    for r in rows:
        if "seed" in r and "step" in r and (int(r["seed"]) not in out or r["step"] >= out[int(r["seed"])]["step"]):
            out[int(r["seed"])] = r
    return out


def summarize(prioritized: bool, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json's `activity`: each seed's final ESS fraction, fractions at floor and cap and the
    spread of its last batches' loss weights, and the run's status under RULE."""
    per_seed = {s: seed_record(r) for s, r in sorted(last_rows(rows).items())}
    return {
        "rule": RULE,
        "status": status(prioritized, per_seed),
        "per_seed": [{"seed": s, **r} for s, r in per_seed.items()],
    }


def describe(activity: Mapping[str, Any]) -> list[str]:
    """One line per seed for a terminal, then the verdict."""
    lines = []
    for r in activity.get("per_seed", []):
        parts = [f"seed {r['seed']}:"]
        if "ess_frac" in r:
            parts.append(f"ESS fraction {r['ess_frac']:.3f}")
        if "floor_frac" in r:
            parts.append(f"at floor {100 * r['floor_frac']:.1f}%")
        if "cap_frac" in r:
            parts.append(f"at cap {100 * r['cap_frac']:.1f}%")
        if "loss_weight_cv" in r:
            parts.append(f"batch loss-weight CV {r['loss_weight_cv']:.3f}")
        lines.append(" ".join(parts))
    lines.append(f"priorities: {activity.get('status', 'not measured')} ({activity.get('rule', RULE)})")
    return lines
