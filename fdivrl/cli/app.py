"""The `fdivrl` command line (Typer + rich).

Lists are comma-separated (`--per-types KL,JS`) and the flag may be repeated; seeds are a start and a
count (`--seed 0 --seeds 4` trains seeds 0..3, vmapped in one program). Every error a user can cause
is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fdivrl import __version__, checks
from fdivrl import config as C
from fdivrl.checks import MAX_COUNT
from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError, DatasetError, FdivrlError
from fdivrl.runs import loggers

app = typer.Typer(
    name="fdivrl",
    help="f-divergence regularized experience replay: train, benchmark and compare per_types.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(
    help="List and make local datasets (AntMaze stand-ins, the walker policy).", no_args_is_help=True
)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

PER_TYPES_HELP = "per_types (case-insensitive): " + ", ".join(D.names())
ANTMAZE_TASKS = tuple(C.ANTMAZE_TASKS)
SUITES = ("antmaze", "mujoco")


def split_list(values: list[str] | None) -> list[str]:
    """Comma lists, possibly repeated: ['KL,JS', 'chi2'] -> ['KL', 'JS', 'chi2']."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def choice(option: str, value: str, options: tuple[str, ...]) -> str:
    """Case-insensitive choice with a one-line error listing the valid values."""
    canonical = checks.canonical(value, options)
    if canonical not in options:
        raise ConfigError(f"{option} {value!r} is not valid; choose one of: {', '.join(options)}")
    return canonical


def per_types(values: list[str]) -> list[str]:
    """Canonical names of the requested per_types, each once (KL,kl is KL); unknown names fail with
    the list of valid ones."""
    return list(dict.fromkeys(D.get(v).name for v in values))


def count_option(option: str, value: int | None, low: int = 1) -> None:
    """Refuse a count outside [low, MAX_COUNT] in one line (None: the option was not given)."""
    if value is not None:
        checks.count(option.lstrip("-").replace("-", "_"), value, low)


def seed_list(seed: int, seeds: int) -> list[int]:
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (number of seeds), got {seeds}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    if seed + seeds - 1 > MAX_COUNT:
        raise ConfigError(
            f"--seed {seed} with --seeds {seeds} reaches seed {seed + seeds - 1}; seeds must be <= {MAX_COUNT}"
        )
    return list(range(seed, seed + seeds))


def usable_dir(option: str, path: Path) -> Path:
    """Check that `path` can be (or is) a directory this process writes in, or fail in one line,
    before any work starts; nothing is left behind, so a later error leaves the disk as it was.

    Trying is the only reliable test (a read-only mount, /proc, a file on the way, a name too long
    for the filesystem): a temporary directory is made and removed where `path` would go."""
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{option} {path} is not a directory (a file is there)")
        parent = path
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(f"{option} {path}: {parent} is a file, not a directory")
        missing = path.relative_to(parent).parts if parent != path else ()
        name_max = os.pathconf(parent, "PC_NAME_MAX")
        if any(len(os.fsencode(part)) > name_max for part in missing):
            raise ConfigError(f"{option} {path}: a name is longer than the filesystem allows ({name_max} bytes)")
        os.rmdir(tempfile.mkdtemp(dir=parent))
    except OSError as exc:
        raise ConfigError(f"{option} {path} cannot be used as a directory ({exc.strerror or exc})") from None
    return path


def _version(value: bool) -> None:
    if value:
        console.print(f"fdivrl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """f-divergence regularized experience replay: train, benchmark and compare per_types."""


def _option_type(option: C.Option) -> type:
    """The Python type of an option's field ("float | None" -> float), for typer's parsing."""
    text = str(option.field().type)
    return int if "int" in text else float if "float" in text else str


def _train_parameters() -> list[inspect.Parameter]:
    """`fdivrl train`'s options: the run's selection, then one option per entry of
    config.TRAIN_OPTIONS, whose help, type and choices come from the config dataclasses."""
    docs = C.field_docs(C.TrainConfig)
    defaults = C.TrainConfig()

    def selection(name: str, extra: str = "", default: Any = None) -> str:
        text = " ".join(docs[name].split()) + extra
        return text + (f" Default: {default}." if default is not None else "")

    def opt(name: str, kind: type, help_text: str, *decls: str) -> inspect.Parameter:
        return inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[kind | None, typer.Option(*decls, help=help_text)],
        )

    params = [
        opt("config", Path, "Repeat a run: its config.json (or run directory); other options override it."),
        opt("per_type", str, selection("per_type", f" {PER_TYPES_HELP}.", defaults.per_type)),
        opt("mode", str, selection("mode", "", defaults.mode)),
        opt("dataset", str, selection("dataset", " Default: D4RL umaze when present, else its local stand-in.")),
        opt("env", str, selection("env")),
        opt("preset", str, selection("preset", "", defaults.preset)),
        opt("seed", int, "First seed. Default: 0."),
        opt("seeds", int, "Number of seeds, trained vmapped in one program. Default: 1."),
    ]
    for option in C.TRAIN_OPTIONS:
        params.append(opt(option.key, _option_type(option), C.option_help(option.key)))
    flags: list[tuple[str, type, Any, str, tuple[str, ...]]] = [
        ("out", Path | None, None, "Run directory (default runs/<dataset or env>/<per_type>).", ()),
        ("resume", bool, False, "Continue the run in --out from its last checkpoint.", ()),
        ("log", str, "none", f"Extra logger beside the JSONL files: {', '.join(loggers.KINDS)}.", ()),
        ("quiet", bool, False, "No progress bar.", ()),
        ("json_out", bool, False, "Print the summary as JSON.", ("--json",)),
    ]
    for name, kind, default, help_text, decls in flags:
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[kind, typer.Option(*decls, help=help_text)],
            )
        )
    return params


def train(**options: Any) -> None:
    """Train one per_type (one or several vmapped seeds) and write a run directory."""
    out, resume, quiet, json_out = (
        options.pop("out"),
        options.pop("resume"),
        options.pop("quiet"),
        options.pop("json_out"),
    )
    log = choice("--log", options.pop("log"), loggers.KINDS)
    if out is not None:
        usable_dir("--out", out)
    build, needs_dataset = train_config_builder(options)
    if needs_dataset:  # check every option before a first run spends minutes generating the default dataset
        build(C.DEFAULT_DATASET)
        cfg = build(resolve_default_dataset(quiet or json_out))
    else:
        cfg = build(None)
    caveat = D.get(cfg.per_type).caveat
    if caveat:
        err_console.print(f"[yellow]note: {caveat}")
    from fdivrl.training.loop import default_out
    from fdivrl.training.loop import train as run_training

    run_dir = out or usable_dir("--out", default_out(cfg))
    summary = run_training(cfg, run_dir, resume=resume, reporter=RichReporter(quiet=quiet or json_out), log=log)
    if json_out:
        print(json.dumps(summary))
    else:
        print_summary(summary, run_dir)


train.__signature__ = inspect.Signature(_train_parameters())  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}  # type: ignore[attr-defined]
app.command()(train)


def train_config_builder(options: dict[str, Any]) -> tuple[Callable[[str | None], C.TrainConfig], bool]:
    """From `fdivrl train`'s option values (None: not given): a function of the dataset id that
    builds the validated config, and whether the default dataset must be resolved first."""
    config_file, seed, seeds = options.pop("config"), options.pop("seed"), options.pop("seeds")
    selection = {k: options.pop(k) for k in ("per_type", "mode", "dataset", "env", "preset")}
    if config_file is not None:
        given = [checks.flag(k) for k, v in selection.items() if v is not None]
        if given:
            raise ConfigError(
                f"--config repeats a run on its own data with its own per_type; {', '.join(given)} would change "
                "what its preset derived (β, clips, floors): start that run from --preset instead"
            )
        base = load_train_config(config_file)
        seed_ids = (
            None
            if seed is None and seeds is None
            else seed_list(base.seeds[0] if seed is None else seed, len(base.seeds) if seeds is None else seeds)
        )
        cfg = C.with_overrides(base, top={"seeds": None if seed_ids is None else tuple(seed_ids)})
        return (lambda _: C.apply_options(cfg, options)), False
    per_type = D.get(selection["per_type"] or C.TrainConfig.per_type).name
    mode = choice("--mode", selection["mode"] or C.TrainConfig.mode, C.MODES)
    preset = choice("--preset", selection["preset"] or C.TrainConfig.preset, C.PRESETS)
    seed_ids = tuple(seed_list(0 if seed is None else seed, 1 if seeds is None else seeds))

    def build(dataset_id: str | None) -> C.TrainConfig:
        cfg = C.preset_config(preset, dataset_id, per_type, mode=mode, env=selection["env"])
        # a dataset given online, or an env offline, reaches validate() and is refused there
        top = {"mode": mode, "seeds": seed_ids, "dataset": dataset_id, "env": selection["env"]}
        return C.apply_options(C.with_overrides(cfg, top=top), options)

    dataset = selection["dataset"]
    return (lambda _: build(dataset)) if mode == "online" or dataset else build, not (mode == "online" or dataset)


def load_train_config(path: Path) -> C.TrainConfig:
    """The TrainConfig a run directory (or its config.json) was trained with."""
    from fdivrl.runs import rundir as runs

    file = path / runs.CONFIG_FILE if path.is_dir() else path
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--config {path}: cannot read a config ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: not an fdivrl run config (a JSON object is expected)")
    try:
        return C.TrainConfig.from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None


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
                "umaze", antmaze_gen.DEFAULT_STEPS, 0, policy, antmaze_gen.DEFAULT_N_ENVS, antmaze_gen.REF_EPISODES,
                False, quiet,
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


class RichReporter:
    """Progress bar with steps, updates/s, ETA and the last evaluation score."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7.1f} upd/s"),
            TimeRemainingColumn(),
            TextColumn("last eval (100×success): {task.fields[last_eval]}"),
            console=err_console,
            disable=quiet,
        )
        self.task = None

    def start(self, total: int, done: int, description: str) -> None:
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, completed=done, rate=0.0, last_eval="–")

    def advance(self, step: int, updates_per_s: float, last_eval: str | None) -> None:
        self.progress.update(self.task, completed=step, rate=updates_per_s, last_eval=last_eval or "–")

    def message(self, text: str) -> None:
        if not self.quiet:
            err_console.print(text)

    def stop(self) -> None:
        self.progress.stop()


def print_summary(summary: dict, run_dir: Path) -> None:
    final = summary.get("final_eval") or {}
    where = summary.get("dataset") or summary.get("env")
    table = Table(title=f"{summary['per_type']} {summary.get('mode', 'offline')} on {where} ({summary['steps']} steps)")
    table.add_column("seed")
    for col in ("D4RL-style score (100×success)", "minari normalized ×100", "mean return"):
        table.add_column(col, justify="right")
    for e in final.get("per_seed", []):
        table.add_row(
            str(e["seed"]),
            f"{e['d4rl_score']:.1f}",
            f"{e['normalized_score_x100']:.1f}" if "normalized_score_x100" in e else "–",
            f"{e['mean_return']:.1f}",
        )
    console.print(table)
    if summary.get("score"):
        score = summary["score"]
        console.print(
            f"score (mean over seeds of the last {score['n_evaluations']:.0f} evaluations): "
            f"return {score['mean_return']:.1f}, D4RL-style {score['d4rl_score']:.1f}"
        )
    if summary.get("activity"):
        from fdivrl.analysis import activity

        for line in activity.describe(summary["activity"]):
            console.print(line)
    console.print(f"run directory: {run_dir}")


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help=f"Benchmark suite: {', '.join(SUITES)}.")],
    per_types_: Annotated[
        list[str] | None, typer.Option("--per-types", help=f"Comma list, repeatable. {PER_TYPES_HELP}.")
    ] = None,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    seeds: Annotated[int, typer.Option(help="Seeds per (task, per_type), vmapped in one program.")] = 5,
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
    steps: Annotated[int | None, typer.Option(help=C.option_help("steps"))] = None,
    chunk: Annotated[int | None, typer.Option(help=C.option_help("chunk"))] = None,
    eval_every: Annotated[int | None, typer.Option(help=C.option_help("eval_every"))] = None,
    eval_episodes: Annotated[
        int | None, typer.Option(help=C.option_help("eval_episodes") + " The final one included.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcomes and the table as JSON.")] = False,
) -> None:
    """Run a benchmark suite (tasks × per_types × seeds) and print the score table.

    Each (task, per_type) is one run directory under --results holding all its seeds; running the
    command again skips finished runs and resumes interrupted ones. The D4RL dataset is used when
    present locally, else its local stand-in (fdivrl data antmaze <task>); datasets with neither
    are reported and left out. Tables: <results>/bench-<suite>-<mode>.{md,csv,json}.
    """
    from fdivrl.analysis import bench as B

    suite = choice("suite", suite, SUITES)
    chosen = per_types(split_list(per_types_) or ["KL", "JS"])
    seed_ids = seed_list(seed, seeds)
    preset = choice("--preset", preset, C.PRESETS)
    backend = choice("--backend", backend, ("local", "ray"))
    if cpus_per_task <= 0:
        raise ConfigError(f"--cpus-per-task must be > 0, got {cpus_per_task}")
    if mode is not None:
        mode = choice("--mode", mode, B.load_suite(suite).modes)
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
        steps=steps,
        chunk=chunk,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        final_eval_episodes=eval_episodes,
    )
    for line in missing:
        err_console.print(f"[yellow]skipped:[/] {escape(line)}")

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


@app.command()
def compare(
    names: Annotated[list[str], typer.Argument(help=f"Two or more {PER_TYPES_HELP}.")],
    results: Annotated[Path, typer.Option(help="Results directory to read runs from (searched recursively).")] = Path(
        "results"
    ),
    metric: Annotated[
        str, typer.Option(help="Score compared: d4rl_score, normalized_score_x100, mean_return, success_rate.")
    ] = "d4rl_score",
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
        (f"{metric} ({K.score_description(comparison)}): 95% stratified-bootstrap CIs", K.statistics_rows(comparison)),
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
    ref_episodes: Annotated[int, typer.Option(help="Episodes for ref_min_score and ref_max_score each.")] = 100,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing stand-in of this task.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate a local stand-in for D4RL/antmaze/<task>-v1 (namespace fdivrl/antmaze)."""
    task = choice("task", task, ANTMAZE_TASKS)
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
    summary = make_standin(task, steps, seed, policy, envs, ref_episodes, overwrite, quiet or json_out)
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
    task: str, steps: int, seed: int, policy, envs: int, ref_episodes: int, overwrite: bool, quiet: bool
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
            task, steps, seed, policy, n_envs=envs, progress=report, overwrite=overwrite, ref_episodes=ref_episodes
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
    from fdivrl.training.online import train_online

    cfg = W.walker_config(steps, seed)
    summary = train_online(cfg, out, resume=resume, reporter=RichReporter(quiet=quiet))
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


@app.command()
def divergences(
    out: Annotated[Path, typer.Option(help="PNG of weight functions and value losses.")] = Path("divergences.png"),
    beta: Annotated[float, typer.Option(help="Temperature used for PER's |δ| = |z|·β.")] = 1.0,
    max_clip: Annotated[float, typer.Option(help="Cap on priority weights.")] = 50.0,
    instances: Annotated[int, typer.Option(help="Random instances for the solver check.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the random instances.")] = 0,
    plot: Annotated[bool, typer.Option(help="Write the PNG.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print everything as one JSON object.")] = False,
) -> None:
    """Every per_type's weights side by side, each closed form checked against a numerical solver."""
    from fdivrl.analysis.plots import plot_divergences
    from fdivrl.core import report as R

    cfg = D.DivergenceConfig(beta=beta, max_clip=max_clip).validate()
    count_option("--instances", instances)
    if plot:
        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; name the PNG file to write")
        usable_dir("--out's directory", out.parent)
    weights = R.weight_table(cfg)
    exact = R.exact_ratio_table()
    checks = R.solver_check(seed=seed, instances=instances)
    seed_cmp = R.seed_comparison()
    png = str(plot_divergences(out, cfg)) if plot else None
    if json_out:
        print(
            json.dumps(
                {
                    "z": list(R.TABLE_Z),
                    "weights": weights,
                    "exact_ratio": exact,
                    "solver_check": [vars(c) for c in checks],
                    "seed_vs_exact": vars(seed_cmp),
                    "plot": png,
                }
            )
        )
        return
    table = Table(
        title=f"priority weight at z = δ/β (caps: max_clip = {cfg.max_clip:g}; exact w* in brackets where capped)"
    )
    table.add_column("per_type", no_wrap=True)
    for z in R.TABLE_Z:
        table.add_column(f"{z:+g}", justify="right")
    for name, row in weights.items():
        cells = []
        for i, w in enumerate(row):
            cell = f"{w:.4g}"
            if name in exact and abs(exact[name][i] - w) > 1e-3 * max(1.0, w):
                e = exact[name][i]
                cell += " [∞]" if e == float("inf") else f" [{e:.4g}]"
            cells.append(cell)
        table.add_row(name, *cells)
    console.print(table)
    check = Table(title=f"closed form vs numerical solver ({instances} random instances, non-uniform buffers)")
    for col in ("per_type", "max |w* − w_solver|", "max |λ_dual − λ|", "objective at w*"):
        check.add_column(col, justify="right")
    for c in checks:
        check.add_row(c.name, f"{c.max_weight_error:.1e}", f"{c.max_lambda_error:.1e}", f"{c.objective_optimum:.5f}")
    console.print(check)
    tb = seed_cmp.top_bottom
    console.print(
        "The seed's JS is not the JS optimum (50 points, uniform buffer, A ~ N(0,1), β = 1): "
        f"top/bottom weight JS-exact {tb['JS-exact'][0]:.3g}/{tb['JS-exact'][1]:.3g}, "
        f"seed JS {tb['JS'][0]:.3g}/{tb['JS'][1]:.3g}, sigmoid {tb['sigmoid'][0]:.3g}/{tb['sigmoid'][1]:.3g}, "
        f"KL {tb['KL'][0]:.3g}/{tb['KL'][1]:.3g}; "
        f"JS objective {seed_cmp.js_objective_optimum:.3f} at the optimum vs "
        f"{seed_cmp.js_objective_seed:.3f} at the seed's weights."
    )
    if png:
        console.print(f"plot written to {png}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every user error into one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="fdivrl", standalone_mode=False)
    except FdivrlError as e:
        _fail(str(e), e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", 130)
    except Exception as e:
        # Typer's parser errors (bad option, missing argument) carry format_message and exit_code;
        # they are the user's to fix. Anything else is a bug and keeps its traceback.
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            _fail(e.format_message(), e.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", markup=True)
    sys.exit(code)
