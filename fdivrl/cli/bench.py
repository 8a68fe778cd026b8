"""`fdivrl bench`: a suite's tasks × per_types × seeds, then the score table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fdivrl import config as C
from fdivrl import suites
from fdivrl.cli.common import (
    PER_TYPES_HELP,
    STOP_DIVERGED_HELP,
    RichReporter,
    app,
    choice,
    console,
    err_console,
    per_types,
    seed_list,
    split_list,
    usable_dir,
)
from fdivrl.errors import ConfigError

SUITES = suites.NAMES


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help=f"Benchmark suite: {', '.join(SUITES)}.")],
    per_types_: Annotated[
        list[str] | None, typer.Option("--per-types", help=f"Comma list, repeatable. {PER_TYPES_HELP}.")
    ] = None,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    seeds: Annotated[
        int, typer.Option(help="Seeds per (task, per_type), vmapped in one program (or one per --seeds-per-run).")
    ] = 5,
    seeds_per_run: Annotated[
        int | None,
        typer.Option(
            help="Split each (task, per_type)'s seeds into runs of at most this many, e.g. --seeds 6 "
            "--seeds-per-run 3 adds seeds 3-5 beside a finished 3-seed run (default: one run holds all). "
            "The table pools each cell's runs."
        ),
    ] = None,
    preset: Annotated[str, typer.Option(help="quick, paper or roer (see fdivrl train --help).")] = "quick",
    mode: Annotated[
        str | None, typer.Option(help="offline or finetune (antmaze), online (mujoco); default: the suite's first.")
    ] = None,
    datasets: Annotated[
        list[str] | None,
        typer.Option(help="Comma list of minari dataset ids to run instead of the suite's (repeatable)."),
    ] = None,
    tasks: Annotated[
        list[str] | None,
        typer.Option(help="Comma list of the suite's tasks to run (repeatable), e.g. umaze,medium-play or Hopper."),
    ] = None,
    results: Annotated[Path, typer.Option(help="Results directory (finished runs are skipped).")] = Path("results"),
    backend: Annotated[str, typer.Option(help="local or ray.")] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address (with --backend ray; --results must be on storage every node sees). "
            "Default: start a local instance."
        ),
    ] = None,
    cpus_per_task: Annotated[float, typer.Option(help="CPUs each Ray task asks for (with --backend ray).")] = 1.0,
    workers: Annotated[
        int,
        typer.Option(
            help="Groups trained at once by the local backend, each in its own process pinned to its share "
            "of the CPUs (no progress bars). One process does not keep several cores busy: on 2 cores, 2 workers "
            "gave 1.16× the throughput of 1 (benchmarks/parallel_groups.py)."
        ),
    ] = 1,
    steps: Annotated[int | None, typer.Option(help=C.option_help("steps"))] = None,
    chunk: Annotated[int | None, typer.Option(help=C.option_help("chunk"))] = None,
    eval_every: Annotated[int | None, typer.Option(help=C.option_help("eval_every"))] = None,
    eval_episodes: Annotated[
        int | None, typer.Option(help=C.option_help("eval_episodes") + " The final one included.")
    ] = None,
    layer_norm: Annotated[str | None, typer.Option(help=C.option_help("layer_norm"))] = None,
    clip_targets: Annotated[bool | None, typer.Option(help=C.option_help("clip_targets"))] = None,
    stop_diverged: Annotated[bool, typer.Option(help=STOP_DIVERGED_HELP)] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Resolve the sweep and say what it would do with each group (finished, resume, train) and "
            "which datasets it would leave out; train nothing, write nothing."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcomes and the table as JSON.")] = False,
) -> None:
    """Run a benchmark suite (tasks × per_types × seeds) and print the score table.

    Each (task, per_type) is one run directory under --results holding all its seeds (or several,
    with --seeds-per-run); running the command again skips finished runs and resumes interrupted
    ones. The D4RL dataset is used when present locally, else its local stand-in (fdivrl data
    antmaze <task>); datasets with neither are reported and left out, unless every group has a
    finished run on them (their rows are then made from those runs). Tables:
    <results>/bench-<suite>-<mode>.{md,csv,json}.
    """
    from fdivrl.analysis import bench as B

    suite = choice("suite", suite, SUITES)
    chosen = per_types(split_list(per_types_) or ["KL", "JS"])
    seed_ids = seed_list(seed, seeds)
    preset = choice("--preset", preset, C.PRESETS)
    backend = choice("--backend", backend, ("local", "ray"))
    if cpus_per_task <= 0:
        raise ConfigError(f"--cpus-per-task must be > 0, got {cpus_per_task}")
    if workers != 1:
        from fdivrl.analysis.parallel import cpu_slices
        from fdivrl.runs.provenance import usable_cpus

        if backend == "ray":
            raise ConfigError("--workers is for the local backend; Ray places its tasks by --cpus-per-task")
        cpu_slices(workers, usable_cpus())  # refuse a count the machine cannot pin before any run starts
    if not dry_run:  # a dry run writes nothing, so a read-only results directory may be looked at
        usable_dir("--results", results)
    spec, mode, groups, missing = B.prepare(
        suite,
        chosen,
        seed_ids,
        preset,
        mode,
        results,
        tasks=split_list(tasks),
        datasets=split_list(datasets),
        seeds_per_run=seeds_per_run,
        stop_diverged=stop_diverged,
        steps=steps,
        chunk=chunk,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        layer_norm=layer_norm,
        clip_targets=clip_targets,
    )
    for line in missing:
        err_console.print(f"[yellow]skipped:[/] {escape(line)}")
    if dry_run:
        print_plan(groups, missing, json_out, results)
        return

    def report(r: B.GroupResult) -> None:
        if json_out:
            return
        what = f"{r.group.per_type} on {r.group.target.source} ({len(r.group.config.seeds)} seeds)"
        if r.status == "finished":
            console.print(f"[green]finished[/] {escape(what)} in {r.seconds:.1f} s")
        elif r.status == "skipped":
            console.print(f"[dim]skipped[/] {escape(what)}: {r.message}")
        else:
            console.print(f"[red]{r.status}[/] {escape(what)}: {escape(r.message)} (log: {r.group.log})")

    if not json_out:
        where = escape(str(results))
        console.print(f"{len(groups)} group(s) under {where}; `fdivrl status {where}` shows where they stand")
    sweep = B.run_sweep(
        spec,
        mode,
        groups,
        missing,
        results,
        report,
        lambda g: RichReporter(quiet=quiet or json_out),
        backend=backend,
        address=address,
        cpus_per_task=cpus_per_task,
        workers=workers,
    )
    table, outcomes, files = sweep.table, sweep.outcomes, sweep.files
    unfinished = [r for r in outcomes if r.status in ("failed", "busy")]
    if json_out:
        outcome_list = [r.to_dict() for r in outcomes]
        print(json.dumps({"outcomes": outcome_list, "missing": missing, "table": table.to_json(), "files": files}))
    else:
        print_bench_table(table, f"{suite} ({mode}, {preset})", files, unfinished)
    if any(r.status == "failed" for r in unfinished):
        raise typer.Exit(1)  # the table is written; the exit code tells scripts that a run failed


def print_plan(groups: list, missing: list[str], json_out: bool, results: Path) -> None:
    """The dry run's answer; the table names each run by its directory in its dataset's folder."""
    from fdivrl.analysis import bench as B

    plan = [
        {
            "per_type": g.per_type,
            "dataset": g.target.source,
            "data": g.target.data,
            "seeds": list(g.config.seeds),
            "run": str(g.out),
            "state": B.planned_state(g),
        }
        for g in groups
    ]
    if json_out:
        print(json.dumps({"groups": plan, "missing": missing}))
        return
    rich_table = Table(title="what this sweep would do (--dry-run: nothing was trained)")
    for header in ("per_type", "dataset", "seeds", "run", "state"):
        rich_table.add_column(header, overflow="fold")
    for group, row in zip(groups, plan, strict=True):
        seeds = ",".join(map(str, row["seeds"]))
        cells = (group.per_type, row["dataset"], seeds, group.out.name, row["state"])
        rich_table.add_row(*map(escape, cells))
    console.print(rich_table)
    console.print(f"runs under {escape(str(results))}, one folder per dataset; --json gives their full paths")


def print_bench_table(table, title: str, files: list[str], unfinished: list) -> None:
    rich_table = Table(title=title, caption="\n".join(table.legend()), caption_justify="left")
    for header in table.headers():
        rich_table.add_column(header, justify="left" if header in ("task", "data (trained on)") else "right")
    for row in table.text_rows():
        rich_table.add_row(*(escape(cell) for cell in row))
    console.print(rich_table)
    console.print(f"tables: {', '.join(files)}")
    retry = sum(1 for r in unfinished if r.retry)
    if retry:
        console.print(f"[red]{retry} run(s) did not finish[/]; run the same command again to retry them")
    if len(unfinished) > retry:
        console.print(
            f"[red]{len(unfinished) - retry} run(s) failed in a way that cannot be fixed by running the same "
            "command again[/]: do what their messages above say first"
        )
