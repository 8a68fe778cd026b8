"""Where every run under a directory stands, finished or not: what `fdivrl status` prints.

Why: a sweep takes hours (a medium-play group trains ~5 h on 2 cores), and `compare` and `bench`
read finished runs only. Before they can, a researcher needs each run's step, its evaluations so
far and whether its priorities act (ESS fraction, share at the floor and at the cap): a run whose
weights sit at a floor is better stopped at 50k steps than found out at 300k. Read-only: a run that
is writing is never locked or touched, only its files read.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdivrl import suites
from fdivrl.analysis import activity, values
from fdivrl.analysis import results as R
from fdivrl.errors import FdivrlError
from fdivrl.runs import checkpoint
from fdivrl.runs import rundir as runs


@dataclass(frozen=True)
class RunProgress:
    path: Path
    state: str
    """finished: summary.json says so. running: a process holds the run's lock. stopped: trained some
    steps and nobody holds the lock (resume it from `checkpoint`; None: killed before its first).
    new: nothing trained yet. corrupt: the directory cannot be read as a run (`note` says why)."""
    per_type: str = "?"
    task: str = "?"
    preset: str = "?"
    mode: str = "?"
    seeds: tuple[int, ...] = ()
    steps: int | None = None
    """The step count the run trains to (its config)."""
    step: int = 0
    """The last step its metrics log reached."""
    checkpoint: int | None = None
    """The step of its newest checkpoint (where a resume starts)."""
    rate: float | None = None
    """Steps per second over its last checkpoint interval (evaluations included), from the wall time
    its checkpoints record; None with fewer than two checkpoints."""
    holder: str = ""
    metric: str | None = None
    eval_step: int | None = None
    evals: dict[int, float] = field(default_factory=dict)
    """Seed -> `metric` at its newest evaluation (`eval_step`)."""
    activity: dict[str, Any] = field(default_factory=dict)
    """activity.summarize of each seed's newest metrics record."""
    values: dict[str, Any] = field(default_factory=dict)
    """values.check of its metrics: whether its mean Q stayed in the range returns can have."""
    note: str = ""

    @property
    def eta_s(self) -> float | None:
        """Seconds to the last step at `rate`, while running."""
        if self.state != "running" or not self.rate or self.steps is None:
            return None
        return max(0, self.steps - self.step) / self.rate

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {**out, "path": str(self.path), "seeds": list(self.seeds), "eta_s": self.eta_s}


def _kernel_lock(lock: Path) -> bool | None:
    """Whether the kernel holds a flock on `lock` (Linux lists them in /proc/locks, with each file's
    device and inode); None where it cannot say (no /proc/locks, no lock file)."""
    try:
        st = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any("FLOCK" in fields and inode in fields for fields in (line.split() for line in table.splitlines()))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def _holder(path: Path) -> tuple[bool, str]:
    """(whether a process holds the run's lock, who). The kernel drops a flock when its holder dies,
    so its lock table is the answer; the lock file only names the holder (it is emptied on release,
    but a killed holder leaves its pid there, which another process may have reused since). Without
    /proc/locks: the named pid's liveness on this host; a holder on another host is taken at its word."""
    lock = path / runs.LOCK_FILE
    try:
        info = json.loads(lock.read_text() or "{}")
        pid, host = int(info["pid"]), str(info["host"])
        who = f"pid {pid} on {host}"
    except (OSError, ValueError, KeyError, TypeError):
        pid, host, who = 0, "", ""
    held = _kernel_lock(lock)
    if held is not None and host in ("", socket.gethostname()):
        return held, who if held else ""
    if not who:
        return False, ""
    if host != socket.gethostname():
        return True, f"{who} (not checked)"
    return (True, who) if _pid_alive(pid) else (False, "")


def _rate(path: Path) -> tuple[int | None, float | None]:
    """(newest checkpoint step, steps/s between the two newest checkpoints)."""
    found = checkpoint.list_checkpoints(path / runs.CHECKPOINT_DIR)[-2:]
    marks = []
    for step, file in found:
        try:
            manifest = checkpoint.read_manifest(file)
        except FdivrlError:  # pruned while we listed it, or damaged: the report goes without it
            continue
        marks.append((step, (manifest.get("meta") or {}).get(runs.WALL_KEY)))
    newest = found[-1][0] if found else None
    if len(marks) < 2 or None in (marks[0][1], marks[1][1]) or marks[1][1] <= marks[0][1]:
        return newest, None
    return newest, (marks[1][0] - marks[0][0]) / (marks[1][1] - marks[0][1])


def _latest_evals(records: list[dict[str, Any]], metric: str | None) -> tuple[str | None, int | None, dict[int, float]]:
    """(metric, step, seed -> metric) of the newest evaluation: `metric` (the task's suite's), else the
    first of R.SCORE_KEYS the records carry."""
    if not any(metric in r for r in records):
        metric = next((k for k in R.SCORE_KEYS if any(k in r for r in records)), None)
    rows = [r for r in records if metric in r and "step" in r and "seed" in r]
    if not rows:
        return metric, None, {}
    step = max(int(r["step"]) for r in rows)
    return metric, step, {int(r["seed"]): float(r[metric]) for r in rows if int(r["step"]) == step}


def progress(path: Path) -> RunProgress:
    """Where the run in `path` stands (never raises for a damaged directory: state "corrupt")."""
    path = Path(path)
    try:
        config = R.read_config(path)
        metrics = R.read_log(path / runs.METRICS_FILE)
        evals = R.read_log(path / runs.EVAL_FILE)
    except R.CorruptRun as exc:
        return RunProgress(path, "corrupt", note=str(exc))
    try:
        alive, holder = _holder(path)
        newest, rate = _rate(path)
        step = max((int(r["step"]) for r in metrics if "step" in r), default=0)
        if runs.is_finished(path):
            state = "finished"
        elif alive:
            state = "running"
        else:
            state = "stopped" if newest is not None or step > 0 else "new"
        mode = str(config.get("mode", "offline"))
        task = R.task_of(config, mode)
        metric, eval_step, scores = _latest_evals(evals, suites.metric_of(task, mode))
        return RunProgress(
            path=path,
            state=state,
            per_type=str(config["per_type"]),
            task=task,
            preset=str(config.get("preset", "?")),
            mode=mode,
            seeds=tuple(int(s) for s in config.get("seeds") or ()),
            steps=int(config["steps"]) if config.get("steps") is not None else None,
            step=step,
            checkpoint=newest,
            rate=rate,
            holder=holder,
            metric=metric,
            eval_step=eval_step,
            evals=scores,
            activity=activity.summarize(R.is_prioritized(config), metrics),
            values=values.check(metrics, values.bounds_of(task, config)),
        )
    except (OSError, FdivrlError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        return RunProgress(path, "corrupt", note=f"unreadable as a run ({type(exc).__name__}: {exc})")


def scan(roots: list[Path]) -> list[RunProgress]:
    """Every run directory under `roots`, in path order."""
    return [progress(p) for root in roots for p in R.find_run_dirs(root)]
