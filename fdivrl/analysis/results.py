"""Reading finished runs back from disk, wherever they are under a results directory.

A run directory is any directory holding ``config.json`` (written by ``fdivrl train`` or ``fdivrl
bench``) or another file only a run writes (a run that lost its ``config.json``). Every directory
found is either used or skipped with a reason, so a table never silently drops a run and a broken
directory never crashes a table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdivrl.analysis import activity, values
from fdivrl.errors import FdivrlError
from fdivrl.runs import rundir as runs
from fdivrl.runs.io import RunWarning, atomic_write_bytes, read_jsonl

SCORE_KEYS = ("d4rl_score", "normalized_score_x100", "mean_return", "success_rate")
SCORE_PROTOCOLS = ("auto", "final", "last")
"""Which score a seed contributes: "final" its final evaluation, "last" the mean of its last N evaluations
(ROER's protocol, summary.json's score.per_seed), "auto" "last" for online and finetune runs that have it."""
PRIORITY_KEYS = (
    "priority_weight_mean",
    "priority_weight_min",
    "priority_weight_max",
    "priority_ess_frac",
    "priority_floor_frac",
    "priority_cap_frac",
    "loss_weight_cv",
)


@dataclass(frozen=True)
class Run:
    """One finished run (one or several vmapped seeds)."""

    path: Path
    per_type: str
    mode: str
    task: str
    """The dataset id (offline, finetune) or env id (online) it trained on."""
    preset: str
    steps: int
    seeds: tuple[int, ...]
    is_standin: bool | None
    """True for a local stand-in dataset, False for minari's D4RL data, None when no dataset."""
    final: dict[int, dict[str, float]]
    """Seed -> final evaluation scores (the keys of SCORE_KEYS it has)."""
    last: dict[int, dict[str, float]] = field(default_factory=dict)
    """Seed -> mean of its last `n_evaluations` evaluations (the keys of SCORE_KEYS it has); empty when
    summary.json has no score.per_seed (offline runs, runs written before it existed)."""
    n_evaluations: int | None = None
    """How many evaluations each of `last` averages; None when `last` is empty."""
    prioritized: bool = True
    activity: dict[int, dict[str, float]] = field(default_factory=dict)
    """Seed -> final priority activity (fdivrl.analysis.activity.FIELDS); from summary.json, or from the last
    metrics record of each seed for runs written before summaries carried it."""

    diverged_at: dict[int, int | None] = field(default_factory=dict)
    """Seed -> the first logged step its mean Q left the range returns can have by more than the range's
    width (None: never); empty when not measured (fdivrl.analysis.values: no reward bounds for the task)."""
    left_at: dict[int, int | None] = field(default_factory=dict)
    """Seed -> the first logged step its mean Q was out of that range (values.OUT_MARGIN; None: never)."""
    data_fingerprint: str | None = None
    """The fingerprint of the data it trained on (config.json's identity); None for online runs and runs
    made before fdivrl recorded it."""
    stopped_at: int | None = None
    """The step train(stop_diverged=True) ended it at, every seed diverged (summary's stopped_early)."""

    @property
    def values_status(self) -> str:
        """'bounded', 'diverged', 'out of range' (each possibly 'in k/n seeds') or 'not measured'
        (fdivrl.analysis.values)."""
        return pooled_values_status([self])

    @property
    def activity_status(self) -> str:
        """'active', 'inactive', 'uniform', ... by fdivrl.analysis.activity's rule."""
        return activity.status(self.prioritized, self.activity)

    def protocol(self, metric: str, protocol: str = "auto") -> str:
        """The protocol, "final" or "last", that `protocol` means for this run and `metric`: "auto" is "last"
        for online and finetune runs that have the last-N mean of `metric`, else "final"."""
        if protocol not in SCORE_PROTOCOLS:
            raise ValueError(f"score protocol {protocol!r} is not one of {', '.join(SCORE_PROTOCOLS)}")
        if protocol == "auto":
            has_last = any(metric in e for e in self.last.values())
            return "last" if self.mode in ("online", "finetune") and has_last else "final"
        return protocol

    def scores(self, metric: str, protocol: str = "final") -> dict[int, float]:
        """Seed -> `metric` under `protocol` (see SCORE_PROTOCOLS); seeds without it are left out."""
        source = self.last if self.protocol(metric, protocol) == "last" else self.final
        return {s: e[metric] for s, e in source.items() if metric in e}


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Scan:
    runs: tuple[Run, ...]
    skipped: tuple[Skipped, ...]


class CorruptRun(FdivrlError):
    """A run directory whose files cannot be read as a run."""


class UnfinishedRun(FdivrlError):
    """A run directory without a finished summary (still running, interrupted or failed)."""


RUN_FILES = (runs.CONFIG_FILE, runs.SUMMARY_FILE, runs.EVAL_FILE, runs.METRICS_FILE, runs.CHECKPOINT_DIR)
"""What only a run directory holds: one of them marks a run, so a run that lost its config.json is
reported as corrupt instead of silently not found."""


def find_run_dirs(root: Path) -> Iterator[Path]:
    """Directories under `root` (itself included) that hold a run's files; run dirs are not descended into."""
    root = Path(root)
    if any((root / name).exists() for name in RUN_FILES):
        yield root
        return
    if not root.is_dir():
        return
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            yield from find_run_dirs(child)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorruptRun(f"{path.name} is unreadable ({' '.join(str(exc).split())})") from exc
    if not isinstance(obj, dict):
        raise CorruptRun(f"{path.name} is not a JSON object")
    return obj


def load_run(path: Path) -> Run:
    """The finished run in `path`; raises UnfinishedRun or CorruptRun (with the reason) otherwise."""
    path = Path(path)
    stored = read_stored(path)
    config = stored["config"]
    if not (path / runs.SUMMARY_FILE).exists():
        raise UnfinishedRun("unfinished (no summary.json)")
    summary = _read_json(path / runs.SUMMARY_FILE)
    if summary.get("status") != "finished":
        raise UnfinishedRun(f"unfinished (status {summary.get('status')!r})")
    try:
        per_seed = (summary.get("final_eval") or {}).get("per_seed") or []
        final = {int(e["seed"]): {k: float(e[k]) for k in SCORE_KEYS if k in e} for e in per_seed}
        score = summary.get("score") or {}
        last_per_seed = score.get("per_seed") or []
        last = {int(e["seed"]): {k: float(e[k]) for k in SCORE_KEYS if k in e} for e in last_per_seed}
        n_evaluations = int(score["n_evaluations"]) if last else None
        if n_evaluations is not None and n_evaluations < 1:
            raise ValueError(f"score.n_evaluations is {n_evaluations}")
        data = summary.get("data") or config.get("data") or {}
        mode = str(config.get("mode", summary.get("mode", "offline")))
        prioritized = is_prioritized(config)
        act = summary.get("activity")
        if isinstance(act, dict):
            per_seed_act = {
                int(r["seed"]): {k: float(r[k]) for k in activity.FIELDS if k in r} for r in act.get("per_seed", [])
            }
        else:
            per_seed_act = {s: activity.seed_record(r) for s, r in activity.last_rows(_metrics(path)).items()}
        task = task_of(config, mode)
        checked = summary.get("values")
        if not isinstance(checked, dict) or any("left_at" not in r for r in checked.get("per_seed", [])):
            # a run finished before summaries carried the check, or its out-of-range part; a stored check
            # stays when the metrics cannot give one (a lost metrics.jsonl must not turn "diverged" to nothing)
            again = values.check(_metrics(path), values.bounds_of(task, config))
            checked = again if again["per_seed"] or not isinstance(checked, dict) else checked
        diverged_at = {int(r["seed"]): r.get("diverged_at") for r in checked.get("per_seed", [])}
        left_at = {int(r["seed"]): r.get("left_at") for r in checked.get("per_seed", [])}
        identity = stored.get("identity") or {}
        return Run(
            path=path,
            per_type=str(config["per_type"]),
            mode=mode,
            task=str(task),
            preset=str(config.get("preset", "?")),
            steps=int(summary["steps"]),
            seeds=tuple(int(s) for s in summary["seeds"]),
            is_standin=data.get("is_local_standin"),
            final=final,
            last=last,
            n_evaluations=n_evaluations,
            prioritized=prioritized,
            activity=per_seed_act,
            diverged_at=diverged_at,
            left_at=left_at,
            data_fingerprint=identity.get("data_fingerprint"),
            stopped_at=(summary.get("stopped_early") or {}).get("step"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptRun(f"summary.json is malformed ({type(exc).__name__}: {exc})") from exc


def pooled_activity_status(pooled: Sequence[Run]) -> str:
    """The activity verdict of one per_type's runs on a task taken together (their seeds pooled)."""
    merged = {(str(r.path), s): a for r in pooled for s, a in r.activity.items()}
    return activity.status(pooled[0].prioritized, merged)


def pooled_values_status(pooled: Sequence[Run]) -> str:
    """The value-range verdict of one per_type's runs on a task taken together (their seeds pooled)."""
    seeds = [{"diverged_at": at, "left_at": r.left_at.get(s)} for r in pooled for s, at in r.diverged_at.items()]
    return values.seeds_status(seeds)


def other_data(run: Run, pooled: Sequence[Run]) -> Run | None:
    """A run of `pooled` that trained on other data than `run` (both recorded a fingerprint), if any:
    seeds of two regenerated stand-ins are not seeds of one experiment."""
    return next(
        (r for r in pooled if None not in (r.data_fingerprint, run.data_fingerprint)
         and r.data_fingerprint != run.data_fingerprint),
        None,
    )  # fmt: skip


def task_of(config: dict[str, Any], mode: str | None = None) -> str:
    """The dataset id (offline, finetune) or env id (online) a run's config trains on."""
    online = (mode or config.get("mode")) == "online" and config.get("env")
    return str(config.get("env") if online else config.get("dataset"))


def is_prioritized(config: dict[str, Any]) -> bool:
    return bool((config.get("replay") or {}).get("prioritized", config["per_type"] != "uniform"))


def read_config(path: Path) -> dict[str, Any]:
    """The run config in `path`/config.json; raises CorruptRun when it is missing or names no per_type."""
    return read_stored(path)["config"]


def read_stored(path: Path) -> dict[str, Any]:
    """The whole `path`/config.json (config, identity, versions, ...), checked as read_config checks it."""
    if not (path / runs.CONFIG_FILE).is_file():
        raise CorruptRun(f"no {runs.CONFIG_FILE} (the run's config is missing)")
    stored = _read_json(path / runs.CONFIG_FILE)
    config = stored.get("config")
    if not isinstance(config, dict) or not config.get("per_type"):
        raise CorruptRun("config.json names no per_type")
    return stored


def _metrics(path: Path) -> list[dict[str, Any]]:
    try:
        return read_log(path / runs.METRICS_FILE)
    except CorruptRun:
        return []


def scan(root: Path) -> Scan:
    """Every run directory under `root`, split into finished runs and skipped ones with reasons."""
    used: list[Run] = []
    skipped: list[Skipped] = []
    for path in find_run_dirs(root):
        try:
            used.append(load_run(path))
        except UnfinishedRun as exc:
            skipped.append(Skipped(path, str(exc)))
        except CorruptRun as exc:
            skipped.append(Skipped(path, f"corrupt: {exc}"))
    return Scan(tuple(used), tuple(skipped))


def read_log(path: Path) -> list[dict[str, Any]]:
    """A run's JSONL log; a torn last line (a crash mid-write) is dropped without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        try:
            return read_jsonl(path)
        except FdivrlError as exc:
            raise CorruptRun(str(exc)) from exc


def curves(records: list[dict[str, Any]], key: str) -> dict[int, dict[int, float]]:
    """Seed -> {step: value} for one key of eval.jsonl or metrics.jsonl records; non-finite values are
    left out (see `non_finite`)."""
    out: dict[int, dict[int, float]] = {}
    for r in records:
        if key in r and "seed" in r and isinstance(r[key], (int, float)) and math.isfinite(r[key]):
            out.setdefault(int(r["seed"]), {})[int(r["step"])] = float(r[key])
    return out


def non_finite(records: list[dict[str, Any]], key: str) -> int:
    """How many records hold a NaN or infinite `key` (left out of `curves`)."""
    return sum(1 for r in records if isinstance(r.get(key), (int, float)) and not math.isfinite(r[key]))


# ---------------------------------------------------------------------------------- table files


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)]) + "\n"


def csv_text(headers: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def write_text(path: Path, text: str) -> Path:
    """Atomic, so two processes writing the same table leave one whole table, never a mix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode())
    except OSError as exc:  # the CLI checks its directories first; this keeps a late failure one line
        raise FdivrlError(f"cannot write {path} ({exc.strerror or exc})") from exc
    return path
