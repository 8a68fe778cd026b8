"""Ctrl-C and SIGTERM during a run become a checkpoint at the next chunk end, then a clean exit.

Without this, a stop loses everything since the last scheduled checkpoint (online: up to
`checkpoint_every` env steps, half an hour of CPU), and a scheduler's SIGTERM at the end of a job
kills the run outright. A second signal while the first is pending stops at once, as Ctrl-C always did.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """A run stopped on request after checkpointing. Not an Exception, so a sweep's per-run error
    handling does not catch it and the whole sweep stops; not a KeyboardInterrupt, which Typer turns
    into a silent exit 130, so the CLI can say where the checkpoint is."""


@contextlib.contextmanager
def deferred_stop() -> Iterator[Callable[[], str | None]]:
    """Inside, the first SIGINT or SIGTERM is recorded instead of acted on; the yielded function
    returns its name (None before one came) for the loop to poll at chunk ends.

    Signal handlers can only be set from the main thread; elsewhere (a Ray worker's thread) signals
    keep their usual effect and the function always returns None.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)

    # a signal the process was started ignoring (SIGINT under nohup) stays ignored
    previous = {s: signal.signal(s, handler) for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
