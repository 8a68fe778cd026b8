"""`fdivrl compare`: statistics and plots from runs on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fdivrl.cli.common import (
    PER_TYPES_HELP,
    app,
    console,
    per_types,
    split_list,
    usable_dir,
)
from fdivrl.errors import ConfigError


@app.command()
def compare(
    names: Annotated[list[str], typer.Argument(help=f"Two or more {PER_TYPES_HELP}.")],
    results: Annotated[Path, typer.Option(help="Results directory to read runs from (searched recursively).")] = Path(
        "results"
    ),
    metric: Annotated[
        str,
        typer.Option(
            help="Score compared: auto (the score the runs' suite ranks by: d4rl_score on AntMaze and other "
            "offline data, mean_return on MuJoCo and other online envs), d4rl_score, normalized_score_x100, "
            "mean_return, success_rate."
        ),
    ] = "auto",
    score: Annotated[
        str,
        typer.Option(
            help="Each seed's score: auto = offline runs their final evaluation, online/finetune runs the mean of "
            "each seed's last N evaluations (N = online.score_last, as ROER reports); final = every run's final "
            "evaluation; last = the mean of the last N evaluations (runs without it are skipped). Online runs "
            "written before fdivrl stored per-seed means fall back to their final evaluation under auto."
        ),
    ] = "auto",
    out: Annotated[
        Path | None, typer.Option(help="Where tables and plots go (default <results>/compare/<A>_vs_<B>...).")
    ] = None,
    reps: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Statistics (IQM, bootstrap CIs, probability of improvement) and plots from runs on disk.

    Uses every finished run of the named per_types under --results (bench or train runs alike) and
    lists the run directories it skipped and why (unfinished, corrupt, another per_type).
    """
    from fdivrl.analysis import compare as K

    chosen = tuple(dict.fromkeys(per_types(split_list(names))))
    if len(chosen) < 2:
        raise ConfigError("compare needs at least two per_types, e.g. `fdivrl compare KL JS`")
    if reps < 100:
        raise ConfigError(f"--reps must be >= 100, got {reps}")
    if not results.is_dir():
        raise ConfigError(f"--results {results} is not a directory")
    out = usable_dir("--out", out or results / "compare" / "_vs_".join(chosen))
    comparison = K.compare(results, chosen, metric=metric, reps=reps, seed=seed, score=score)
    files = K.write_files(comparison, out)
    if json_out:
        print(json.dumps({**comparison.to_json(), "files": [str(f) for f in files]}))
        return
    for title, (headers, rows) in (
        (
            f"{comparison.metric} ({K.score_description(comparison)}): 95% stratified-bootstrap CIs",
            K.statistics_rows(comparison),
        ),
        ("priority activity (final; range over seeds)", K.activity_rows(comparison)),
        ("probability of improvement P(X > Y)", K.improvement_rows(comparison)),
        ("run directories", K.runs_rows(comparison)),
    ):
        rich_table = Table(title=title)
        for header in headers:
            rich_table.add_column(header)
        for row in rows:
            rich_table.add_row(*(escape(cell) for cell in row))
        console.print(rich_table)
    for note in comparison.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    from fdivrl.analysis.activity import RULE

    console.print(f"priorities {RULE}: an inactive per_type trained with uniform replay")
    console.print(f"written: {', '.join(str(f) for f in files)}")
