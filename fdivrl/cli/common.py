"""What every `fdivrl` command shares: the Typer apps, the consoles, option parsing and checks, the progress bar.

Lists are comma-separated (`--per-types KL,JS`) and the flag may be repeated; seeds are a start and a
count (`--seed 0 --seeds 4` trains seeds 0..3, vmapped in one program). Every error a user can cause
is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fdivrl import __version__, checks
from fdivrl.checks import MAX_COUNT
from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError

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
STOP_DIVERGED_HELP = (
    "End a run once every seed's mean Q has left the range of possible returns by more than its width (tasks "
    "with bounded rewards, e.g. AntMaze): it takes its final evaluation and checkpoint there, and its summary "
    "says stopped_early. Saves the steps a diverged learner cannot use."
)


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
