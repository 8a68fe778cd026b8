"""`fdivrl status`: where every run under a directory stands, finished or not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fdivrl.cli.common import app, console
from fdivrl.errors import ConfigError

DEFAULT_ROOTS = (Path("runs"), Path("results"))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _scores(p) -> str:
    if p.eval_step is None:
        return "–"
    values = " / ".join(f"{p.evals[s]:.4g}" for s in sorted(p.evals))
    return f"{values} at {p.eval_step:,}"


def _priorities(activity: dict) -> str:
    seeds = activity.get("per_seed", [])
    status = activity.get("status", "not measured")

    def span(key: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        values = [scale * r[key] for r in seeds if key in r]
        if not values:
            return "?"
        lo, hi = min(values), max(values)
        return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}–{hi:{fmt}}"

    if status in ("uniform", "not measured"):
        return status
    floor, cap = span("floor_frac", 100, ".0f"), span("cap_frac", 100, ".0f")
    return f"{status}: ESS {span('ess_frac')}, floor {floor}%, cap {cap}%"


@app.command()
def status(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Run or results directories, searched recursively (default: runs and results)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object per run, one per line.")] = False,
) -> None:
    """Where every run stands, finished or not: step, speed, ETA, evaluations so far, and whether its
    priorities act (ESS fraction, share at the floor and at the cap; the rule tables apply).

    Reads the runs' files only: a run that is training is not locked or slowed.
    """
    from fdivrl.analysis import progress

    roots = list(paths) if paths else [p for p in DEFAULT_ROOTS if p.is_dir()]
    missing = [str(p) for p in roots if not p.exists()]
    if missing or not roots:
        raise ConfigError(f"no such directory: {', '.join(missing) or ' or '.join(map(str, DEFAULT_ROOTS))}")
    found = progress.scan(roots)
    if not found:
        raise ConfigError(f"no run directories under {', '.join(map(str, roots))}")
    if json_out:
        for p in found:
            print(json.dumps(p.to_json()))
        return
    table = Table(title="runs", title_justify="left")
    headers = ("task", "per_type", "preset", "state", "step", "steps/s", "ETA", "last evaluation", "priorities")
    for header in (*headers, "directory"):
        table.add_column(header)
    for p in found:
        step = f"{p.step:,}/{p.steps:,}" if p.steps else f"{p.step:,}"
        state = p.state if p.state != "running" else f"running ({p.holder})"
        if p.state == "stopped" and p.checkpoint is not None:
            state = f"stopped (checkpoint {p.checkpoint:,})"
        cells = [p.task, p.per_type, p.preset, state, step, f"{p.rate:.1f}" if p.rate else "–", _duration(p.eta_s)]
        cells += [_scores(p), _priorities(p.activity) if p.state != "corrupt" else p.note, str(p.path)]
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    metrics = sorted({p.metric for p in found if p.metric})
    console.print(
        f"last evaluation: {', '.join(metrics) or 'score'} per seed at that step; ESS: (Σw)²/(N·Σw²) of the stored "
        "priorities, 1 = uniform; floor/cap: share of stored weights there. A stopped run resumes with "
        "`fdivrl train --resume --out <dir>` or the same bench command."
    )
