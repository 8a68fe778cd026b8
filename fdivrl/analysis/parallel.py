"""Several bench groups at once on one machine, each in its own process pinned to its own CPUs.

One training process does not keep two cores busy: a (256, 256) update is a chain of small ops that
XLA's CPU thread pool splits poorly, and vmapping more seeds into it barely helps. Processes pinned
to disjoint CPUs do not compete for caches or threads, so a machine's cores are better spent on
several groups at once (``benchmarks/parallel_groups.py`` measures the ratio: 1.16× on 2 cores).

Each group runs in a fresh spawned process (forking a process that runs JAX threads can deadlock),
in its own process group so that a terminal's Ctrl-C reaches only this parent, which forwards every
SIGINT/SIGTERM it gets to the running groups once. They checkpoint and stop as a single run does; no
new group starts after a signal, and the sweep then stops the way a one-process sweep does.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, MutableMapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from fdivrl.analysis.bench import Group, GroupResult, run_group, skip_finished
from fdivrl.errors import ConfigError
from fdivrl.runs.provenance import usable_cpus
from fdivrl.runs.stop import SIGNALS, Interrupted, StopRequested


def cpu_slices(workers: int, cpus: Sequence[int]) -> list[tuple[int, ...]]:
    """``workers`` disjoint, equal runs of ``cpus`` (a remainder is left idle rather than shared)."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if workers > len(cpus):
        raise ConfigError(f"--workers {workers}: this process may use only {len(cpus)} CPUs")
    per = len(cpus) // workers
    return [tuple(cpus[k * per : (k + 1) * per]) for k in range(workers)]


def share_accelerator(environ: MutableMapping[str, str] = os.environ) -> None:
    """Let the workers share one GPU: by default each JAX process takes 75 % of its memory at start,
    so a second worker would fail to allocate. A value the user set is kept."""
    environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _child(group: Group, cpus: tuple[int, ...], conn: Connection) -> None:
    """Body of a worker process: pin, train the group, send back what happened."""
    os.setpgrp()
    share_accelerator()  # before JAX's backend starts in this process
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)  # before JAX starts its thread pool, which sizes itself to these
    try:
        message: tuple[str, Any] = ("result", run_group(group))
    except StopRequested as exc:
        message = ("stopped", str(exc))
    except Interrupted as exc:
        message = ("interrupted", str(exc))
    conn.send(message)
    conn.close()


def _receive(conn: Connection) -> tuple[str, Any]:
    try:
        return conn.recv()
    except EOFError:  # the child exited without a word
        return ("died", None)


def run_pinned(groups: Sequence[Group], on_result: Callable[[GroupResult], None], workers: int) -> list[GroupResult]:
    """Up to ``workers`` groups at a time, each pinned to its share of the usable CPUs; outcomes are
    reported as they come and returned in the groups' order."""
    out, todo = skip_finished(groups, on_result)
    if not todo:
        return out
    free = cpu_slices(min(workers, len(todo)), usable_cpus())
    ctx = mp.get_context("spawn")
    running: dict[Any, tuple[mp.process.BaseProcess, Connection, Group, tuple[int, ...]]] = {}
    messages: dict[Any, tuple[str, Any]] = {}
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for process, *_ in running.values():
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(process.pid, signum)

    main = threading.current_thread() is threading.main_thread()
    # a signal the process was started ignoring (SIGINT under nohup) stays ignored, in the children too
    keep = [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN] if main else []
    previous = {s: signal.signal(s, forward) for s in keep}
    stopped, interrupted = [], []
    try:
        while todo or running:
            while todo and free and not received:
                group, cpus = todo.pop(0), free.pop(0)
                reader, writer = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(group, cpus, writer), name=f"fdivrl-{group.per_type}")
                process.start()
                writer.close()
                running[process.sentinel] = (process, reader, group, cpus)
            if not running:
                break
            conns = {entry[1]: sentinel for sentinel, entry in running.items() if sentinel not in messages}
            for ready in wait([*running, *conns], timeout=1.0):
                if ready in conns:  # read before the exit: a large message would block the child
                    if conns[ready] in running:  # not finalized by its sentinel just before
                        messages[conns[ready]] = _receive(ready)
                    continue
                process, reader, group, cpus = running.pop(ready)
                process.join()
                if ready not in messages:
                    messages[ready] = _receive(reader) if reader.poll() else ("died", None)
                reader.close()
                free.append(cpus)
                kind, payload = messages.pop(ready)
                if kind == "result":
                    out.append(payload)
                    on_result(payload)
                elif kind == "stopped":
                    stopped.append(payload)
                elif kind == "interrupted":
                    interrupted.append(payload)
                else:  # killed (out of memory) or crashed outside run_group's handling
                    message = f"its worker process died (exit code {process.exitcode})"
                    out.append(GroupResult(group, "failed", message))
                    on_result(out[-1])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for process, *_ in running.values():  # only if this loop itself failed
            process.kill()
    if interrupted:
        raise Interrupted(interrupted[0])
    if stopped:
        raise StopRequested("; ".join(stopped))
    if received and todo:
        name = signal.Signals(received[0]).name
        raise StopRequested(f"{name} between runs, {len(todo)} not started; the same fdivrl bench command runs them")
    rank = {group.out: k for k, group in enumerate(groups)}
    return sorted(out, key=lambda r: rank[r.group.out])  # the sweep's order, as the one-process sweep reports
