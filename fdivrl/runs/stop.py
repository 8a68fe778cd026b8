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


class Interrupted(BaseException):
    """Ctrl-C acted on at once (outside a training loop, or a second signal inside one). Not a
    KeyboardInterrupt, which Typer turns into a silent exit 130, so the CLI can say so in one line."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside, SIGINT raises Interrupted instead of KeyboardInterrupt (main thread only; a SIGINT
    the process was started ignoring stays ignored)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
            _interrupt(signum, frame)
        received.append(signal.Signals(signum).name)

    # a signal the process was started ignoring (SIGINT under nohup) stays ignored
    previous = {s: signal.signal(s, handler) for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield lambda: received[0] if received else None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
