"""The `fdivrl` command line (Typer + rich): one module per command, registered on import."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from fdivrl import compile_cache
from fdivrl.cli import bench, compare, data, divergences, status, train  # noqa: F401  (registers the commands)
from fdivrl.cli.common import app, err_console
from fdivrl.errors import FdivrlError
from fdivrl.runs.stop import Interrupted, StopRequested, interrupts_raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every user error into one line and an exit code."""
    command = typer.main.get_command(app)
    compile_cache.enable()
    try:
        with interrupts_raise():
            code = command.main(args=argv, prog_name="fdivrl", standalone_mode=False)
    except FdivrlError as e:
        _fail(str(e), e.exit_code)
    except StopRequested as e:
        _fail(f"stopped: {e}", 130)
    except Interrupted as e:
        resume = "a training run resumes from its last checkpoint with --resume or the same bench command"
        _fail(f"interrupted ({e}); {resume}", 130)
    except typer.Abort:
        _fail("aborted", 1)
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
