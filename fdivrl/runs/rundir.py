"""The run directory: every file that belongs to one training run, and how it is written.

Layout of ``<out>/``::

    config.json      resolved config, seeds, command line, package versions, platform, resumes
    metrics.jsonl    one JSON object per logged training step (each has an int "step")
    eval.jsonl       one JSON object per evaluation (each has an int "step")
    checkpoints/     ckpt-<step>.npz, the newest ``keep`` of them
    summary.json     written at the end; {"status": "finished", ...} marks a finished run
    .lock            flock'ed by the process that owns the run

Why it is written this way:

* Data is never overwritten: a directory that holds a run is refused unless ``resume=True``, and
  a resume must use the same config except for keys that may change (``steps`` and friends).
* One writer per run: a :class:`fdivrl.runs.lock.RunLock` on ``.lock`` held for the life of the
  run; the kernel drops it when the process dies, so a lock left by a killed run is taken over.
* Crash safety: JSON files and checkpoints are written atomically (:mod:`fdivrl.runs.io`), so a
  reader sees the old or the new file, never half of one; temp files a crash left are removed
  when the run is opened again. Log lines are appended with one ``write`` each; a torn last line
  is dropped on read and cut off before the next append. Logs are fsync'ed before each
  checkpoint, and on resume lines with a step past the restored checkpoint are dropped, so a
  resumed run's logs equal those of a run that was never interrupted (provided the caller logs
  step ``s`` before checkpointing step ``s``).
* Checkpoints (:mod:`fdivrl.runs.checkpoint`) are ``.npz`` files of the flattened pytree leaves
  plus a JSON manifest, restored into a template without pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fdivrl.errors import OTHER_DIR, ConfigError, FdivrlError, TrainingDiverged
from fdivrl.runs.checkpoint import Checkpoint, latest_checkpoint, save_checkpoint
from fdivrl.runs.io import (
    TMP_MARK,
    JsonlWriter,
    RunWarning,
    atomic_write_json,
    filter_jsonl,
    json_dumps,
    jsonable,
    read_json,
    read_jsonl,
    truncate_jsonl,
)
from fdivrl.runs.lock import RunLock
from fdivrl.runs.provenance import platform_info, usable_cpus, versions

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "DEFAULT_ALLOWED_CHANGES",
    "EVAL_FILE",
    "METRICS_FILE",
    "SUMMARY_FILE",
    "ConfigMismatch",
    "IdentityMismatch",
    "RunDir",
    "check_finite",
    "config_diff",
    "is_finished",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".lock"
WALL_KEY = "wall_s"
"""The checkpoint meta key of a run's wall time up to that checkpoint (resumed segments summed)."""
DEFAULT_ALLOWED_CHANGES: tuple[str, ...] = ("steps", "resume", "out")


class ConfigMismatch(ConfigError):
    """A resume was asked with a config that differs from the stored one."""


class IdentityMismatch(ConfigMismatch):
    """A resume was asked on other data (or another fact in ``identity``) than the run started with."""


# --------------------------------------------------------------------------- NaN policy


def check_finite(metrics: Mapping[str, Any], step: int, last_checkpoint_step: int | None = None) -> None:
    """Raise :class:`TrainingDiverged` if any numeric metric is NaN or inf; strings are ignored.

    Call it before logging and before checkpointing, so the last checkpoint on disk is a good one.
    """
    bad: list[str] = []
    for name, value in metrics.items():
        if isinstance(value, (str, bytes)):
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if not np.all(np.isfinite(arr)):
            shown = float(arr) if arr.ndim == 0 else "non-finite entries"
            bad.append(f"{name}={shown}")
    if bad:
        where = f" (step {last_checkpoint_step})" if last_checkpoint_step is not None else ""
        raise TrainingDiverged(
            f"training diverged at step {step}: {', '.join(bad)}; "
            f"the last good checkpoint{where} is kept and no checkpoint is written after it"
        )


# --------------------------------------------------------------------------- config comparison


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON-like configs differ (lists compare as a whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(config_diff(old[key], new[key], path))
        return out
    # 1 and 1.0 are the same setting; True and 1 are not
    same = old == new if _is_number(old) and _is_number(new) else type(old) is type(new) and old == new
    return [] if same else [prefix or "<root>"]


def with_added_fields(config: Mapping[str, Any], added: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with each dotted path of ``added`` that it lacks set to its value: a field added to
    the configs after a run was recorded, at the value that reproduces that run, is no difference."""
    out = json.loads(json.dumps(config))
    for path, value in added.items():
        *parents, name = path.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(name, value)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _get_path(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return "<absent>"
        tree = tree[part]
    return tree


def allowed_change(path: str, allowed: Iterable[str]) -> bool:
    """Whether a dotted config path is one of ``allowed`` or under one."""
    return any(path == a or path.startswith(a + ".") for a in allowed)


def _short(value: Any, width: int = 40) -> str:
    text = value if value == "<absent>" else json_dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- the run directory


def is_finished(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a run whose summary says ``"status": "finished"``."""
    summary = Path(path) / SUMMARY_FILE
    try:
        return json.loads(summary.read_text()).get("status") == "finished"
    except (OSError, ValueError, AttributeError):
        return False


class RunDir:
    """One run's directory. Use :meth:`create` to start or resume; it holds the lock until :meth:`close`.

    Typical use::

        with RunDir.create(out, config, resume=args.resume, seeds={"seed": 0}) as run:
            restored = run.restore(template)          # None: start from scratch
            ...
            check_finite(losses, step)                # before logging / checkpointing
            run.log_metrics({"step": step, **losses})
            run.save_checkpoint(step, state)
            run.write_summary({"status": "finished", ...})
    """

    def __init__(self, path: str | os.PathLike[str], keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = keep
        self.resumed = False
        self._lock = RunLock(self.path / LOCK_FILE)
        self._metrics = JsonlWriter(self.metrics_path)
        self._eval = JsonlWriter(self.eval_path)

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def has_run(self) -> bool:
        return self.config_path.exists()

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        config: Mapping[str, Any],
        resume: bool = False,
        allowed_changes: Sequence[str] = (),
        seeds: Mapping[str, int] | None = None,
        argv: Sequence[str] | None = None,
        keep: int = 2,
        identity: Mapping[str, str | None] | None = None,
        added_fields: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Lock ``path`` and start a run there, or resume the one it holds.

        Refuses (never overwrites) a directory holding a run unless ``resume``; on resume the
        stored config and seeds must equal the new ones except at ``DEFAULT_ALLOWED_CHANGES`` and
        ``allowed_changes`` (dotted paths; a prefix allows everything under it). ``resume`` on a
        directory with no run starts a fresh one (``run.resumed`` tells which happened).

        ``identity`` holds facts that are not settings but must not change either, such as the
        training data's fingerprint: a resume refuses a value that differs from the stored one, and
        records one the run did not store yet (a run started before fdivrl recorded it).

        ``added_fields`` (dotted config paths → value) are settings added after some runs were
        recorded: a stored config without one has the value given here (with_added_fields).
        """
        run = cls(path, keep=keep)
        try:
            if run.path.exists() and not run.path.is_dir():
                raise FdivrlError(f"run directory {run.path} exists and is not a directory; " + OTHER_DIR)
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only place, a file on the way, a name too long, ...
            raise FdivrlError(
                f"run directory {run.path} cannot be created ({exc.strerror or exc}); " + OTHER_DIR
            ) from exc
        run._lock.acquire()
        try:
            run._remove_temp_files()
            record = {
                "config": jsonable(dict(config)),
                "seeds": jsonable(dict(seeds or {})),
            }
            facts = {k: v for k, v in (identity or {}).items() if v is not None}
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            command = list(sys.argv if argv is None else argv)
            if run.has_run():
                if not resume:
                    raise FdivrlError(
                        f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
                    )
                allowed = tuple(DEFAULT_ALLOWED_CHANGES) + tuple(allowed_changes)
                run._resume(record, facts, allowed, command, now, added_fields or {})
            else:
                others = [p.name for p in run.path.iterdir() if p.name != LOCK_FILE]
                if others:
                    raise FdivrlError(
                        f"{run.path} is not empty ({', '.join(sorted(others)[:3])}) "
                        "and holds no fdivrl run; " + OTHER_DIR
                    )
                atomic_write_json(
                    run.config_path,
                    {
                        "format": "fdivrl-run",
                        "version": 1,
                        **record,
                        "identity": facts,
                        "command": command,
                        "versions": versions(),
                        "platform": platform_info(),
                        "created_at": now,
                        "resumes": [],
                    },
                )
        except BaseException:
            run.close()
            raise
        return run

    def _resume(
        self,
        record: dict[str, Any],
        facts: dict[str, str],
        allowed: tuple[str, ...],
        command: list[str],
        now: str,
        added_fields: Mapping[str, Any],
    ) -> None:
        try:
            stored = self.read_config()
            if not isinstance(stored, dict):
                raise FdivrlError(f"{self.config_path} is not a JSON object")
        except FdivrlError as exc:  # resuming again cannot fix it: say what can
            raise FdivrlError(
                f"cannot resume {self.path}: its config.json is unreadable ({exc}); move the directory away "
                "(or delete it) to start the run afresh, or " + OTHER_DIR
            ) from exc
        # before the config: other data changes its recorded facts too (reference scores), and this says why
        known = stored.get("identity") if isinstance(stored.get("identity"), dict) else {}
        for key, value in facts.items():
            if key in known and known[key] != value:
                raise IdentityMismatch(
                    f"cannot resume {self.path}: its {key.replace('_', ' ')} was {known[key]} and is now {value}, "
                    "so the resumed run would mix two of them; restore the original (regenerating a stand-in "
                    "on another machine can change it) or " + OTHER_DIR
                )
        old = {"config": with_added_fields(stored.get("config", {}), added_fields), "seeds": stored.get("seeds", {})}
        diffs = config_diff(old, record)
        bad = [d for d in diffs if not allowed_change(d.split(".", 1)[1] if "." in d else d, allowed)]
        if bad:
            shown = "; ".join(
                f"{d.removeprefix('config.')} ({_short(_get_path(old, d))} → {_short(_get_path(record, d))})"
                for d in bad[:5]
            )
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ConfigMismatch(
                f"cannot resume {self.path}: config differs at {shown}{more}; use the original options or " + OTHER_DIR
            )
        added = {k: v for k, v in facts.items() if k not in known}
        now_versions = versions()
        changed_versions = {
            k: [stored.get("versions", {}).get(k), v]
            for k, v in now_versions.items()
            if stored.get("versions", {}).get(k) != v
        }
        if changed_versions:
            warnings.warn(
                f"resuming {self.path} with different package versions: {changed_versions}",
                RunWarning,
                stacklevel=3,
            )
        if diffs:  # the old summary describes a shorter run
            self.retire_summary()
        stored["config"] = record["config"]
        stored["seeds"] = record["seeds"]
        stored["identity"] = {**known, **added}
        stored.setdefault("resumes", []).append(
            {
                "at": now,
                "command": command,
                "changed": {d: [_get_path(old, d), _get_path(record, d)] for d in diffs},
                "versions": changed_versions,
                **({"identity_added": added} if added else {}),
                "cpus_usable": len(usable_cpus()),
            }
        )
        atomic_write_json(self.config_path, stored)
        self.resumed = True

    def _remove_temp_files(self) -> None:
        """Temp files can only be left by a crashed writer, since we hold the lock."""
        for directory in (self.path, self.checkpoint_dir):
            if directory.is_dir():
                for p in directory.iterdir():
                    if TMP_MARK in p.name and p.is_file():
                        with contextlib.suppress(OSError):
                            p.unlink()

    def read_config(self) -> dict[str, Any]:
        """The whole stored ``config.json`` (the resolved config is under ``"config"``)."""
        return read_json(self.config_path)

    # logs
    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one training record; it must carry an int ``step``."""
        self._metrics.append(_with_step(record))

    def log_eval(self, record: Mapping[str, Any]) -> None:
        """Append one evaluation record; it must carry an int ``step``."""
        self._eval.append(_with_step(record))

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)

    def read_evals(self) -> list[dict[str, Any]]:
        return read_jsonl(self.eval_path)

    def truncate_logs(self, max_step: int | None) -> None:
        """Drop log records past ``max_step`` (all of them with None) — what a resume needs."""
        self._metrics.close()
        self._eval.close()
        truncate_jsonl(self.metrics_path, max_step)
        truncate_jsonl(self.eval_path, max_step)

    # checkpoints
    def save_checkpoint(self, step: int, tree: Any, meta: Mapping[str, Any] | None = None) -> Path:
        """fsync the logs, then atomically write the checkpoint and prune to the newest ``keep``."""
        self._metrics.sync()
        self._eval.sync()
        return save_checkpoint(self.checkpoint_dir, step, tree, meta, keep=self.keep)

    def latest_checkpoint(self) -> Checkpoint | None:
        return latest_checkpoint(self.checkpoint_dir, quarantine=self._lock.held)

    def restore(self, template: Any) -> tuple[Any, Checkpoint] | None:
        """Restore the newest readable checkpoint into ``template`` and cut the logs back to its step.

        Returns None (and empties the logs) when there is no checkpoint, so the caller starts
        from scratch and its logs still match an uninterrupted run.
        """
        ckpt = self.latest_checkpoint()
        if ckpt is None:
            self.truncate_logs(None)
            return None
        tree = ckpt.restore(template)
        self.truncate_logs(ckpt.step)
        return tree, ckpt

    # summary
    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Atomically write ``summary.json``; ``{"status": "finished"}`` marks the run finished."""
        atomic_write_json(self.summary_path, dict(summary))

    def retire_summary(self) -> None:
        """Keep summary.json as summary.previous.json: it no longer marks the run finished (a resume
        trains it on)."""
        if self.summary_path.exists():
            os.replace(self.summary_path, self.path / "summary.previous.json")

    def drop_evals(self, step: int) -> None:
        """Drop the evaluation records of `step` (an early stop's, when the run trains on past it)."""
        self._eval.close()
        filter_jsonl(self.eval_path, lambda r: not (isinstance(r, dict) and r.get("step") == step))

    def read_summary(self) -> dict[str, Any] | None:
        return read_json(self.summary_path) if self.summary_path.exists() else None

    def is_finished(self) -> bool:
        return is_finished(self.path)

    # lifetime
    def close(self) -> None:
        """Close the logs and release the lock (idempotent)."""
        self._metrics.close()
        self._eval.close()
        self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_step(record: Mapping[str, Any]) -> dict[str, Any]:
    step = record.get("step")
    if isinstance(step, np.integer):
        step = int(step)
    if not isinstance(step, int) or isinstance(step, bool):
        raise TypeError(f"log records need an int 'step', got {step!r}")
    return {**record, "step": step}
