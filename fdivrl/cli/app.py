"""The `fdivrl` command line (Typer + rich): one module per command, registered on import."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from fdivrl.cli import bench, compare, data, divergences, train  # noqa: F401  (registers the commands)
from fdivrl.cli.common import app, err_console
from fdivrl.errors import FdivrlError
from fdivrl.runs.stop import StopRequested


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every user error into one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="fdivrl", standalone_mode=False)
    except FdivrlError as e:
        _fail(str(e), e.exit_code)
    except StopRequested as e:
        _fail(f"stopped: {e}", 130)
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
