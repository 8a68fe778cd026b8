"""`fdivrl data`: list datasets, make the local AntMaze stand-ins and the walker; the default dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fdivrl import config as C
from fdivrl.cli.common import (
    RichReporter,
    choice,
    console,
    count_option,
    data_app,
    err_console,
    seed_list,
    usable_dir,
)
from fdivrl.errors import DatasetError

ANTMAZE_TASKS = tuple(C.ANTMAZE_TASKS)


def resolve_default_dataset(quiet: bool = False) -> str:
    """The real D4RL umaze if present locally, else the local stand-in, generated on first use.

    Generation uses the shipped walker and `fdivrl data antmaze umaze`'s defaults (1M steps), so
    the embedded default runs on a machine that cannot download minari's data. A process that finds
    another one generating it waits for that one and uses its dataset."""
    from fdivrl.config import DEFAULT_DATASET, LOCAL_DEFAULT_DATASET
    from fdivrl.data import datasets as minari_data
    from fdivrl.data.antmaze import generator as antmaze_gen
    from fdivrl.data.antmaze.walker import load_walker

    present = minari_data.local_datasets()
    if DEFAULT_DATASET in present:
        return DEFAULT_DATASET
    if LOCAL_DEFAULT_DATASET in present:
        err_console.print(f"[yellow]{DEFAULT_DATASET} is not present locally: using {LOCAL_DEFAULT_DATASET}")
        return LOCAL_DEFAULT_DATASET
    try:
        policy = load_walker()
    except DatasetError as err:
        raise DatasetError(
            f"{DEFAULT_DATASET} is not present locally (`minari download {DEFAULT_DATASET}`, or pass --dataset) "
            f"and the local stand-in cannot be generated: {err}"
        ) from None
    waiting = False
    while LOCAL_DEFAULT_DATASET not in minari_data.local_datasets():
        if not waiting:
            err_console.print(
                f"[yellow]{DEFAULT_DATASET} is not present locally (download it with minari, or pass --dataset): "
                f"generating the local stand-in {LOCAL_DEFAULT_DATASET} once with the shipped walker, "
                f"{antmaze_gen.DEFAULT_STEPS:,} steps whatever this run's --steps, "
                f"{generation_time(antmaze_gen.DEFAULT_STEPS)} (`fdivrl data antmaze umaze` does the same) ..."
            )
        try:
            make_standin(
                "umaze", antmaze_gen.DEFAULT_STEPS, 0, policy, antmaze_gen.DEFAULT_N_ENVS,
                antmaze_gen.DEFAULT_VECTORIZATION, antmaze_gen.REF_EPISODES, False, quiet,
            )  # fmt: skip
        except antmaze_gen.GenerationBusy:
            if not waiting:
                err_console.print("[yellow]another fdivrl process is generating it: waiting for that one")
            waiting = True
            time.sleep(WAIT_POLL_S)
        except antmaze_gen.DatasetExists:
            pass  # another process finished it just now
        else:
            err_console.print(f"[green]wrote {LOCAL_DEFAULT_DATASET} under {minari_data.datasets_root()}")
            return LOCAL_DEFAULT_DATASET
    err_console.print(f"[yellow]{DEFAULT_DATASET} is not present locally: using {LOCAL_DEFAULT_DATASET}")
    return LOCAL_DEFAULT_DATASET


WAIT_POLL_S = 5.0
GENERATION_MINUTES_PER_M_STEPS = 8.0
"""`fdivrl data antmaze umaze` (1M steps, 200 reference episodes) takes about 8 minutes on 2 CPU cores (README)."""


def generation_time(steps: int) -> str:
    """How long generating `steps` stand-in transitions takes, said before it starts."""
    minutes = GENERATION_MINUTES_PER_M_STEPS * steps / 1e6
    return f"about {minutes:.0f} minutes on 2 CPU cores" if minutes >= 1.5 else "under 2 minutes on 2 CPU cores"


@data_app.command("list")
def data_list() -> None:
    """Datasets present under $MINARI_DATASETS_PATH (default ~/.minari/datasets)."""
    from fdivrl.data import datasets as minari_data

    found = minari_data.local_datasets()
    if not found:
        console.print(f"no datasets under {minari_data.datasets_root()}")
        return
    table = Table(title=f"datasets under {minari_data.datasets_root()}")
    table.add_column("id")
    table.add_column("kind")
    for dataset_id in found:
        table.add_row(dataset_id, "D4RL (real)" if dataset_id.startswith("D4RL/") else "local")
    console.print(table)


@data_app.command("antmaze")
def data_antmaze(
    task: Annotated[str, typer.Argument(help=f"One of: {', '.join(ANTMAZE_TASKS)}.")],
    steps: Annotated[int, typer.Option(help="Transitions to generate.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of episodes, waypoint jitter and action noise.")] = 0,
    walker_file: Annotated[
        Path | None, typer.Option(help="Walker policy file (default: the one shipped in the package).")
    ] = None,
    envs: Annotated[int, typer.Option(help="Vector envs stepped together (batched policy calls).")] = 10,
    vectorization: Annotated[
        str,
        typer.Option(
            help="sync (the envs step in this process) or async (one process per env): the same data, "
            "faster where there is a core per env."
        ),
    ] = "sync",
    ref_episodes: Annotated[int, typer.Option(help="Episodes for ref_min_score and ref_max_score each.")] = 100,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing stand-in of this task.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate a local stand-in for D4RL/antmaze/<task>-v1 (namespace fdivrl/antmaze)."""
    task = choice("task", task, ANTMAZE_TASKS)
    vectorization = choice("--vectorization", vectorization, ("sync", "async"))
    for option, value in (("--steps", steps), ("--envs", envs), ("--ref-episodes", ref_episodes)):
        count_option(option, value)
    seed_list(seed, 1)
    from fdivrl.data import datasets as minari_data
    from fdivrl.data.antmaze import generator as antmaze_gen
    from fdivrl.data.antmaze.walker import DEFAULT_WALKER_PATH, load_walker

    dataset_id = antmaze_gen.get_task(task).dataset_id
    where = minari_data.dataset_dir(dataset_id)
    if where.exists() and not overwrite:  # before the walker loads and minutes of generation start
        raise antmaze_gen.DatasetExists(
            f"dataset '{dataset_id}' already exists at {where}; pass --overwrite to replace it"
        )
    policy = load_walker(walker_file)
    summary = make_standin(task, steps, seed, policy, envs, vectorization, ref_episodes, overwrite, quiet or json_out)
    measured = policy.record.get("measured", {})
    summary["walker"] = {
        "file": str(walker_file or DEFAULT_WALKER_PATH),
        "command": policy.record.get("command"),
        "checkpoint_step": policy.record.get("checkpoint_step"),
        "measured_success": {t: m.get("success_rate") for t, m in measured.items()},
    }
    if json_out:
        print(json.dumps(summary))
        return
    table = Table(title=f"{summary.get('dataset_id', task)}: local stand-in for D4RL/antmaze/{task}-v1")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    for t, rate in summary["walker"]["measured_success"].items():
        table.add_row(f"walker success on {t} (its record)", f"{rate:.2f}")
    console.print(table)


def make_standin(
    task: str,
    steps: int,
    seed: int,
    policy,
    envs: int,
    vectorization: str,
    ref_episodes: int,
    overwrite: bool,
    quiet: bool,
) -> dict:
    """Run the generator under a rich progress bar (one bar per phase)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fdivrl.data.antmaze import generator as antmaze_gen

    labels = {"ref-random": "ref_min (random)", "ref-controller": "ref_max (controller)", "collect": "collect"}
    bars: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet,
    ) as progress:

        def report(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = progress.add_task(labels.get(phase, phase), total=total)
            progress.update(bars[phase], completed=done)

        return antmaze_gen.generate(
            task,
            steps,
            seed,
            policy,
            n_envs=envs,
            progress=report,
            overwrite=overwrite,
            ref_episodes=ref_episodes,
            vectorization=vectorization,
        )


@data_app.command("walker")
def data_walker(
    steps: Annotated[int, typer.Option(help="Env steps of online SAC on fdivrl/GoalReachAnt-v0.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Run directory of the training run.")] = Path("runs/walker"),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    walker_file: Annotated[
        Path | None, typer.Option(help="Where to write the walker (default: the package's walker.npz).")
    ] = None,
    measure_episodes: Annotated[
        int, typer.Option(help="Episodes per task of the success measure stored in the record (0: skip).")
    ] = 50,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train the goal-reaching ant that drives the local AntMaze generator, and export it."""
    count_option("--steps", steps)
    count_option("--measure-episodes", measure_episodes, low=0)
    seed_list(seed, 1)
    usable_dir("--out", out)
    if walker_file is not None:
        usable_dir("--walker-file's directory", walker_file.parent)
    from fdivrl.data.antmaze import walker
    from fdivrl.data.antmaze import walker_training as W
    from fdivrl.training.loop import train

    cfg = W.walker_config(steps, seed)
    summary = train(cfg, out, resume=resume, reporter=RichReporter(quiet=quiet))
    record = {
        "command": f"fdivrl data walker --steps {steps} --seed {seed}",
        "steps": steps,
        "seed": seed,
        "train_score": summary.get("score"),
        "env_steps_per_s": summary.get("env_steps_per_s"),  # of the last (possibly resumed) segment
    }
    path = W.export(out, walker_file or walker.DEFAULT_WALKER_PATH, record, measure_episodes)
    console.print(f"walker written to {path} (score over the last evaluations: {summary.get('score')})")
    for task, result in walker.load_walker(path).record.get("measured", {}).items():
        verdict = "meets" if result["meets_bar"] else "misses"
        console.print(
            f"{task}: the waypoint controller reached the goal in {result['success_rate']:.0%} of "
            f"{result['episodes']} episodes ({verdict} the bar of {result['bar']:.0%})"
        )
