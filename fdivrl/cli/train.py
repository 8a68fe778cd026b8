"""`fdivrl train`: its options are built from the config dataclasses (config.TRAIN_OPTIONS)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fdivrl import checks
from fdivrl import config as C
from fdivrl.api import make_config
from fdivrl.cli.common import (
    PER_TYPES_HELP,
    STOP_DIVERGED_HELP,
    RichReporter,
    app,
    choice,
    console,
    err_console,
    seed_list,
    usable_dir,
)
from fdivrl.cli.data import resolve_default_dataset
from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError
from fdivrl.runs import loggers


def _option_type(option: C.Option) -> type:
    """The Python type of an option's field ("float | None" -> float), for typer's parsing."""
    text = str(option.field().type)
    return bool if "bool" in text else int if "int" in text else float if "float" in text else str


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
        ("stop_diverged", bool, False, STOP_DIVERGED_HELP, ()),
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
    out, resume, quiet, json_out, stop_diverged = (
        options.pop("out"),
        options.pop("resume"),
        options.pop("quiet"),
        options.pop("json_out"),
        options.pop("stop_diverged"),
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
    reporter = RichReporter(quiet=quiet or json_out)
    summary = run_training(cfg, run_dir, resume=resume, reporter=reporter, log=log, stop_diverged=stop_diverged)
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
        # the Python API's builder; a dataset given online, or an env offline, is refused by validate()
        return make_config(per_type, dataset_id, mode, selection["env"], preset, seeds=seed_ids, **options)

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
    raw = raw.get("config", raw) if isinstance(raw, dict) else raw  # a run's config.json nests it
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: not an fdivrl run config (a JSON object is expected)")
    try:
        return C.TrainConfig.from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None


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
            f"{e['d4rl_score']:.1f}" if "d4rl_score" in e else "–",
            f"{e['normalized_score_x100']:.1f}" if "normalized_score_x100" in e else "–",
            f"{e['mean_return']:.1f}",
        )
    console.print(table)
    if summary.get("score"):
        score = summary["score"]
        d4rl = f", D4RL-style {score['d4rl_score']:.1f}" if "d4rl_score" in score else ""
        console.print(
            f"score (mean over seeds of the last {score['n_evaluations']:.0f} evaluations): "
            f"return {score['mean_return']:.1f}{d4rl}"
        )
    if summary.get("activity"):
        from fdivrl.analysis import activity

        for line in activity.describe(summary["activity"]):
            console.print(line)
    if summary.get("values"):
        from fdivrl.analysis import values

        for line in values.describe(summary["values"]):
            console.print(f"[bold red]{escape(line)}[/]")
    if summary.get("wall_s") is not None:
        console.print(f"wall time: {summary['wall_s'] / 60:.1f} min (setup, training, evaluations; segments summed)")
    console.print(f"run directory: {run_dir}")
