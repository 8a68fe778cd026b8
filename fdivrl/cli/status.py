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


def _steps(n: int) -> str:
    return f"{n / 1000:g}k" if n >= 1000 else str(n)


def _scores(p) -> str:
    if p.eval_step is None:
        return "–"
    values = (p.evals[s] for s in sorted(p.evals))
    return f"{' '.join(f'{v:.0f}' if abs(v) >= 100 else f'{v:.3g}' for v in values)} @{_steps(p.eval_step)}"


def _priorities(activity: dict) -> str:
    seeds = activity.get("per_seed", [])
    status = activity.get("status", "not measured")

    def span(key: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        values = [scale * r[key] for r in seeds if key in r]
        if not values:
            return "?"
        lo, hi = f"{min(values):{fmt}}", f"{max(values):{fmt}}"
        return lo if lo == hi else f"{lo}–{hi}"

    if status in ("uniform", "not measured"):
        return status
    floor, cap = span("floor_frac", 100, ".0f"), span("cap_frac", 100, ".0f")
    return f"{status}: ESS {span('ess_frac')}, floor {floor}%, cap {cap}%"


def _values(values: dict) -> str:
    status = values.get("status", "not measured")
    key = "diverged_at" if status.startswith("diverged") else "left_at"
    seeds = values.get("per_seed", [])
    marks = [s[key] for s in seeds if s.get(key) is not None]
    clips = values.get("target_clip_frac", [])
    # values held in range by --clip-targets say so: the clip, not the learner, bounds them
    clipped = f" (targets clipped, {max(clips):.1%} cut)" if clips else ""
    if not marks:
        return {"bounded": "ok", "not measured": "–"}.get(status, status) + clipped
    return f"{status.upper() if key == 'diverged_at' else status} from @{_steps(min(marks))}{clipped}"


def _label(path: Path, root: Path) -> str:
    """The run's directory as found under the root the user named (its own name when it is the root)."""
    return path.name if path == root else str(path.relative_to(root))


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
    found = [(root, p) for root in roots for p in progress.scan([root])]
    if not found:
        raise ConfigError(f"no run directories under {', '.join(map(str, roots))}")
    if json_out:
        for _, p in found:
            print(json.dumps(p.to_json()))
        return
    table = Table(title=f"runs under {', '.join(map(str, roots))}", title_justify="left")
    for header in ("run", "per_type", "state", "step", "ETA", "last evaluation", "Q", "priorities"):
        table.add_column(header, overflow="fold")
    for root, p in found:
        step = f"{_steps(p.step)}/{_steps(p.steps)}" if p.steps else _steps(p.step)
        state = p.state
        if p.state == "stopped":
            state = f"stopped @{_steps(p.checkpoint)}" if p.checkpoint is not None else "stopped, no checkpoint"
        note = _priorities(p.activity) if p.state != "corrupt" else p.note
        cells = [_label(p.path, root), p.per_type, state, step, _duration(p.eta_s), _scores(p), _values(p.values), note]
        table.add_row(*(escape(c) for c in cells))
    console.print(table)
    metrics = sorted({p.metric for _, p in found if p.metric})
    console.print(
        f"last evaluation: each seed's {' or '.join(metrics) or 'score'} @ its step; ETA at the speed of the last "
        "checkpoint interval; Q: ok while every seed's mean Q stays in the range returns can have (DIVERGED: it left "
        "it by more than its width, and the scores say nothing about the per_type; out of range: by less); ESS: "
        "(Σw)²/(N·Σw²) of the stored priorities, 1 = uniform; floor/cap: share of the stored weights there. A "
        "stopped run resumes with `fdivrl train --config <dir> --out <dir> --resume` or its bench command; --json "
        "has every field.",
        highlight=False,
    )
