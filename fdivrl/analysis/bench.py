"""`fdivrl bench`: a suite's tasks × per_types, all seeds of one (task, per_type) vmapped in one run.

Suites are data (fdivrl/suites/*.json, shipped in the wheel) and so are the published scores the table shows beside
ours (fdivrl/suites/reference_scores.json). Each (task, per_type) group is one run directory under
the results directory; reruns skip groups already finished with the same config and resume
interrupted ones. A failing group is reported with its log and the sweep goes on; a group whose
run another process holds (a second bench on the same results) is reported busy, not touched.

Datasets: a suite's D4RL id is used when present locally, else its local stand-in
(fdivrl/antmaze/<task>-v1), and every table row says which. A dataset with neither is reported
(with the command that builds the stand-in) and left out, unless every group of the sweep has a
finished run on it: then its row is made again from those runs. A sweep with no dataset fails.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdivrl import checks, suites
from fdivrl import config as C
from fdivrl.analysis import activity, results, stats, values
from fdivrl.core import divergences as D
from fdivrl.data import datasets as minari_data
from fdivrl.errors import ConfigError, DatasetError, FdivrlError
from fdivrl.runs import rundir as runs
from fdivrl.runs.lock import RunLocked
from fdivrl.runs.provenance import usable_cpus

# column tags and what they mean (the legend under every table)
METRIC_LABELS = {
    "d4rl_score": ("D4RL", "D4RL-style score = 100 × success rate (episode ends at the goal)"),
    "normalized_score_x100": ("minari", "minari normalized score × 100 (return-based; not comparable with D4RL's)"),
    "mean_return": ("return", "mean episode return"),
}
TRAIN_OVERRIDES = ("steps", "chunk", "eval_every", "eval_episodes", "layer_norm", "clip_targets")
"""The `fdivrl train` options (config.TRAIN_OPTIONS keys) a sweep may set for all its groups."""


# ---------------------------------------------------------------------------------- suites


@dataclass(frozen=True)
class SuiteTask:
    task: str
    dataset: str | None = None
    standin: str | None = None
    env: str | None = None
    hyperparameters: dict[str, dict[str, float]] = field(default_factory=dict)
    """mode -> divergence settings (the preset's values, kept here so a suite can be edited as data)."""


@dataclass(frozen=True)
class Suite:
    name: str
    modes: tuple[str, ...]
    metric: str
    tasks: tuple[SuiteTask, ...]


def load_suite(name: str) -> Suite:
    raw = suites.read(name)
    return Suite(
        name=raw["name"],
        modes=tuple(raw["modes"]),
        metric=raw["metric"],
        tasks=tuple(SuiteTask(**t) for t in raw["tasks"]),
    )


def select_tasks(suite: Suite, names: Sequence[str]) -> Suite:
    """The suite restricted to the named tasks (case-insensitive, in the suite's order); all when none."""
    if not names:
        return suite
    known = {t.task.lower(): t for t in suite.tasks}
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise ConfigError(
            f"--tasks {', '.join(unknown)}: not in the {suite.name} suite; choose from: "
            + ", ".join(t.task for t in suite.tasks)
        )
    wanted = {n.lower() for n in names}
    return dataclasses.replace(suite, tasks=tuple(t for t in suite.tasks if t.task.lower() in wanted))


def reference_columns(suite: str, mode: str) -> list[dict[str, Any]]:
    """The published columns that apply to this suite and mode, each with its source."""
    table = suites.read("reference_scores").get(suite, {})
    return [c for c in table.get("columns", []) if mode in c["modes"]]


# ---------------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class Target:
    """A task resolved to what is actually trained on, and what kind of data that is."""

    task: str
    source: str
    """Dataset id (offline, finetune) or env id (online)."""
    data: str
    """'D4RL', 'stand-in', 'local' (a dataset given with --datasets) or 'env'."""


def resolve_targets(
    suite: Suite, mode: str, datasets: Sequence[str] = (), pending: Callable[[Target], str | None] = lambda t: ""
) -> tuple[list[Target], list[str]]:
    """The targets to run and one message per dataset that is missing (and left out). A dataset that is
    not here still counts where ``pending`` says none of its runs has anything left to train (None), so
    a table can be made again from the runs on a machine without the data; else ``pending`` says what
    is left ('' for nothing worth adding to the message)."""
    if mode == "online":
        if datasets:
            raise ConfigError(f"--datasets is for dataset suites; the {suite.name} suite trains in its envs")
        return [Target(t.task, t.env or t.task, "env") for t in suite.tasks], []
    present = set(minari_data.local_datasets())
    targets: list[Target] = []
    missing: list[str] = []

    def choose(options: list[Target], message: str) -> None:
        """Data that is here first (real before stand-in), then the finished runs of either."""
        chosen = next((o for o in options if o.source in present), None)
        notes = []
        for option in options if chosen is None else ():
            note = pending(option)
            if note is None:
                chosen = option
                break
            notes.append(note)
        if chosen is not None:
            targets.append(chosen)
        else:
            missing.append(message + "".join(notes))

    if datasets:
        by_id = {i: t for t in suite.tasks for i in (t.dataset, t.standin) if i}
        for dataset_id in datasets:
            known = by_id.get(dataset_id)
            data = "D4RL" if dataset_id.startswith("D4RL/") else "stand-in" if known else "local"
            build = f"fdivrl data antmaze {known.task}" if known and dataset_id == known.standin else None
            target = Target(known.task if known else dataset_id, dataset_id, data)
            choose([target], _missing(dataset_id, minari_data.standin_command(dataset_id), build))
        return targets, missing
    for t in suite.tasks:
        options = [Target(t.task, i, kind) for i, kind in ((t.dataset, "D4RL"), (t.standin, "stand-in")) if i]
        choose(options, _missing(t.dataset or t.task, minari_data.standin_command(t.dataset or "")))
    return targets, missing


def _missing(dataset_id: str, standin: str | None, build: str | None = None) -> str:
    """``build``: the command that makes this very dataset (a stand-in), which no download gets."""
    if build:
        return f"{dataset_id} is not present locally: build it with `{build}`"
    make = f"; or build the local stand-in with `{standin}`" if standin else ""
    return f"{dataset_id} is not present locally: `minari download {dataset_id}` on a machine with internet{make}"


@dataclass(frozen=True)
class Group:
    """One (task, per_type) and its seeds (all of them, or one run's share with ``seeds_per_run``):
    one run directory, one vmapped training program."""

    target: Target
    per_type: str
    config: C.TrainConfig
    out: Path
    log: Path
    stop_diverged: bool = False
    """train(stop_diverged=...): end the run once every seed diverged. Not part of the config, so a run
    resumed with or without it is the same run."""


def _safe(name: str) -> str:
    return name.replace("/", "_")


def group_config(
    target: Target, per_type: str, preset: str, mode: str, seeds: Sequence[int], **overrides: Any
) -> C.TrainConfig:
    """The preset for the target (its per-task settings come from the suite, via the preset), then
    the caller's overrides."""
    online = mode == "online"
    cfg = C.preset_config(
        preset,
        None if online else target.source,
        D.get(per_type).name,
        mode=mode,
        env=target.source if online else None,
    )
    return C.apply_options(C.with_overrides(cfg, top={"seeds": tuple(seeds)}), _options(overrides))


def _options(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(TRAIN_OVERRIDES))
    if unknown:
        raise TypeError(f"unknown sweep overrides {unknown}; a sweep sets {', '.join(TRAIN_OVERRIDES)}")
    return {k: overrides.get(k) for k in TRAIN_OVERRIDES}


def plan(
    targets: Sequence[Target],
    per_types: Sequence[str],
    seeds: Sequence[int],
    preset: str,
    mode: str,
    results_dir: Path,
    seeds_per_run: int | None = None,
    stop_diverged: bool = False,
    **overrides: Any,
) -> list[Group]:
    """Every (target, per_type, run of seeds) group, with its run directory and log path (absolute, for
    Ray workers). ``seeds_per_run`` splits the seeds into consecutive runs of at most that many (default:
    one run holds them all), so a sweep can add seeds beside finished runs instead of training them again."""
    root = Path(results_dir).resolve()
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"a sweep needs distinct seeds, got {list(seeds)}")
    size = len(seeds) if seeds_per_run is None else seeds_per_run
    if size < 1:
        raise ConfigError(f"--seeds-per-run must be at least 1, got {size}")
    groups = []
    for target in targets:
        for per_type in per_types:
            for first in range(0, len(seeds), size):
                chunk = seeds[first : first + size]
                cfg = group_config(target, per_type, preset, mode, chunk, **overrides)
                name = f"{cfg.per_type}-{mode}-{preset}-s{chunk[0]}x{len(chunk)}"
                groups.append(
                    Group(
                        target,
                        cfg.per_type,
                        cfg,
                        root / _safe(target.source) / name,
                        root / "logs" / _safe(target.source) / f"{name}.log",
                        stop_diverged,
                    )
                )
    return groups


# ---------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class GroupResult:
    group: Group
    status: str
    """'finished' (trained now), 'skipped' (finished earlier), 'failed' or 'busy' (another process holds it)."""
    message: str = ""
    seconds: float = 0.0
    retry: bool = True
    """Whether running the same command again can finish it: False when it failed for a reason the user
    must fix first (an FdivrlError: a corrupt run directory, a config mismatch, a divergence)."""

    def to_dict(self) -> dict[str, Any]:
        g = self.group
        return {
            "per_type": g.per_type,
            "dataset": g.target.source,
            "data": g.target.data,
            "run": str(g.out),
            "log": str(g.log),
            "status": self.status,
            "message": self.message,
            "seconds": self.seconds,
            "retry": self.retry,
        }


def _config_diffs(group: Group) -> list[str]:
    """Where the config stored in the group's run directory differs from the one this sweep would use
    (dotted paths); raises OSError, ValueError, KeyError, TypeError or AttributeError on an unreadable one."""
    stored = runs.with_added_fields(json.loads((group.out / runs.CONFIG_FILE).read_text())["config"], C.ADDED_FIELDS)
    wanted = json.loads(json.dumps(group.config.to_dict()))
    # the stored record adds facts about the data (data, env_id) beside the config: compare the config
    return runs.config_diff({k: v for k, v in stored.items() if k in wanted}, wanted)


_UNREADABLE = (OSError, ValueError, KeyError, TypeError, AttributeError)


def is_done(group: Group) -> bool:
    """Finished, with the config this sweep would use (so a changed option is never silently skipped);
    a run stopped early (every seed diverged) counts as done only for a sweep that stops such runs."""
    if not runs.is_finished(group.out):
        return False
    try:
        early = (json.loads((group.out / runs.SUMMARY_FILE).read_text()) or {}).get("stopped_early")
        return not (early and not group.stop_diverged) and not _config_diffs(group)
    except _UNREADABLE:
        return False


def planned_state(group: Group) -> str:
    """What a sweep would do with the group, as run_group would find out: nothing ('finished'), 'resume'
    it, 'train' it afresh, or fail on it ('conflict: ...': its directory holds another run)."""
    if is_done(group):
        return "finished"
    if not (group.out / runs.CONFIG_FILE).exists():
        others = [p for p in group.out.iterdir() if p.name != runs.LOCK_FILE] if group.out.is_dir() else []
        return "conflict: holds no fdivrl run" if others else "train"
    try:
        diffs = _config_diffs(group)
    except _UNREADABLE:
        return "conflict: its config.json is unreadable"
    allowed = (*runs.DEFAULT_ALLOWED_CHANGES, *C.RESUMABLE_CHANGES)
    bad = [d for d in diffs if not runs.allowed_change(d, allowed)]
    if bad:
        return f"conflict: config differs at {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
    if runs.is_finished(group.out) and not diffs:  # then only an early stop keeps it from counting
        return "resume (stopped early: finished only under --stop-diverged)"
    return "resume"


def run_group(group: Group, reporter: Any = None) -> GroupResult:
    """Train one group (resuming what is there) and record the outcome in its log; never raises an Exception."""
    if is_done(group):
        return GroupResult(group, "skipped", "finished earlier with the same config")
    group.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with group.log.open("a") as log:
        when = time.strftime("%Y-%m-%dT%H:%M:%S")
        cpus = ",".join(map(str, usable_cpus()))
        log.write(f"{when} pid {os.getpid()} cpus {cpus}: {group.per_type} on {group.target.source} -> {group.out}\n")
        log.flush()
        try:
            from fdivrl.training.loop import train

            train(group.config, group.out, resume=True, reporter=reporter, stop_diverged=group.stop_diverged)
        except RunLocked as exc:
            log.write(f"busy: {exc}\n")
            return GroupResult(group, "busy", _one_line(exc), time.perf_counter() - t0)
        except Exception as exc:
            log.write(traceback.format_exc())
            retry = not isinstance(exc, FdivrlError)  # a crash may pass; the user's error will not
            return GroupResult(group, "failed", _one_line(exc), time.perf_counter() - t0, retry)
        seconds = time.perf_counter() - t0
        log.write(f"finished in {seconds:.1f} s\n")
    return GroupResult(group, "finished", "", seconds)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def run_local(
    groups: Sequence[Group], on_result: Callable[[GroupResult], None], reporter: Callable[[Group], Any] | None = None
) -> list[GroupResult]:
    """One group after another in this process (each group's seeds already run in parallel, vmapped)."""
    out = []
    for group in groups:
        result = run_group(group, reporter(group) if reporter else None)
        on_result(result)
        out.append(result)
    return out


def skip_finished(
    groups: Sequence[Group], on_result: Callable[[GroupResult], None]
) -> tuple[list[GroupResult], list[Group]]:
    """Report the finished groups as skipped and return them with the rest, so they never cost a worker."""
    out, todo = [], []
    for group in groups:
        if is_done(group):
            out.append(GroupResult(group, "skipped", "finished earlier with the same config"))
            on_result(out[-1])
        else:
            todo.append(group)
    return out, todo


def run_ray(
    groups: Sequence[Group],
    on_result: Callable[[GroupResult], None],
    address: str | None = None,
    cpus_per_task: float = 1.0,
) -> list[GroupResult]:
    """Each group a Ray task (with a GPU when the cluster has one), on `address` or a local instance started here."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--backend ray needs ray: pip install 'fdivrl[ray]'") from exc
    out, todo = skip_finished(groups, on_result)
    if not todo:
        return out
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
        if address:
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot join the Ray cluster at {address}: {_one_line(exc)}") from exc
        else:
            cpus = max(1, min(os.cpu_count() or 1, round(cpus_per_task * len(todo))))
            ray.init(num_cpus=cpus, include_dashboard=False, **options)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus, max_retries=0)(run_group)
        pending = {task.remote(g): g for g in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                group = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died (out of memory, node lost)
                    result = GroupResult(group, "failed", _one_line(exc))
                on_result(result)
                out.append(result)
        return out
    finally:
        if started:
            ray.shutdown()


def check_targets(targets: Sequence[Target], missing: Sequence[str]) -> None:
    if not targets:
        raise DatasetError("no dataset of the sweep is present locally: " + "; ".join(missing))


# ---------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Cell:
    """One (task, per_type): scores over seeds, or why there are none."""

    estimates: dict[str, stats.Estimate]
    seeds: int
    note: str = ""
    priorities: str = "–"
    """fdivrl.analysis.activity's verdict: active, inactive (a floor artefact, not a result), uniform, ..."""
    values: str = "–"
    """fdivrl.analysis.values' verdict: bounded, diverged (the score measures a divergence), out of range
    (values no return can have), not measured."""
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)
    """metric -> seed -> the score each seed contributed (so every cell traces back to its runs)."""
    runs: tuple[str, ...] = ()
    """The run directories the cell was read from (relative to the working directory)."""


@dataclass(frozen=True)
class ScoreTable:
    suite: str
    mode: str
    metrics: tuple[str, ...]
    per_types: tuple[str, ...]
    rows: tuple[tuple[Target, dict[str, Cell]], ...]
    references: tuple[dict[str, Any], ...]

    def reference(self, column: dict[str, Any], task: str) -> str:
        value = column["scores"].get(task)
        if value is None:
            return "–"
        ci = column.get("ci95", {}).get(task)
        return f"{value:g}" + (f" ± {ci:g}" if ci is not None else "")

    def headers(self) -> list[str]:
        cols = ["task", "data (trained on)"]
        cols += [f"{p} {METRIC_LABELS[m][0]}" for p in self.per_types for m in self.metrics]
        return cols + [f"{c['name']}*" for c in self.references]

    def legend(self) -> list[str]:
        """What the columns mean, and where every published number comes from."""
        lines = [f"{METRIC_LABELS[m][0]}: {METRIC_LABELS[m][1]}" for m in self.metrics]
        per_seed = "final evaluation" if self.mode == "offline" else "mean of its last evaluations (ROER)"
        lines.append(f"cells: each seed's {per_seed}, mean ± half-width of the Student-t 95% CI over seeds (n)")
        lines.append(f"INACTIVE marks a prioritized per_type whose priorities stayed uniform ({activity.RULE})")
        lines.append(
            f"DIVERGED marks a per_type whose learner diverged on some seed, Q-OUT one whose mean Q was out of range"
            f" on some seed ({values.RULE})"
        )
        lines += [f"{c['name']}* (published): {c['source']}" for c in self.references]
        if self.references and self.mode == "online":
            lines.append("published numbers are at 1M env steps on gym's v2 envs; rows here may train fewer (--steps)")
        elif self.references:
            lines.append("published numbers are on the original D4RL data; stand-in and local rows are not comparable")
        return lines

    def text_rows(self) -> list[list[str]]:
        out = []
        for target, cells in self.rows:
            row = [target.task, f"{target.data}: {target.source}"]
            for p in self.per_types:
                cell = cells[p]
                row += [format_cell(cell, m) for m in self.metrics]
            out.append(row + [self.reference(c, target.task) for c in self.references])
        return out

    def csv_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Long format, numbers only: one row per (task, per_type or published column, metric)."""
        headers = [
            "task", "data", "dataset", "per_type", "metric", "mean", "ci95_low", "ci95_high", "seeds", "priorities",
            "values", "note",
        ]  # fmt: skip
        rows: list[list[Any]] = []
        for target, cells in self.rows:
            head = [target.task, target.data, target.source]
            for p, c in cells.items():
                for m in self.metrics:
                    e = c.estimates.get(m)
                    numbers = (e.value, e.low, e.high) if e else ("", "", "")
                    rows.append([*head, p, m, *numbers, c.seeds, c.priorities, c.values, c.note])
            for col in self.references:
                if target.task in col["scores"]:
                    ci = col.get("ci95", {}).get(target.task)
                    value = col["scores"][target.task]
                    low, high = (value - ci, value + ci) if ci is not None else ("", "")
                    published = [f"{col['name']} (published)", self.metrics[0], value, low, high]
                    rows.append([*head, *published, "", "", "", ""])
        return headers, rows

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "mode": self.mode,
            "metrics": list(self.metrics),
            "ci": "Student-t 95% interval of the mean over seeds",
            "rows": [
                {
                    "task": t.task,
                    "dataset": t.source,
                    "data": t.data,
                    "per_types": {
                        p: {
                            "seeds": c.seeds,
                            "note": c.note,
                            "priorities": c.priorities,
                            "values": c.values,
                            "runs": list(c.runs),
                            "per_seed": {m: {str(k): v for k, v in by.items()} for m, by in c.per_seed.items()},
                            **{m: e.to_dict() for m, e in c.estimates.items()},
                        }
                        for p, c in cells.items()
                    },
                    "published": {c["name"]: c["scores"].get(t.task) for c in self.references},
                }
                for t, cells in self.rows
            ],
            "published_sources": {c["name"]: c["source"] for c in self.references},
        }


def format_cell(cell: Cell, metric: str) -> str:
    e = cell.estimates.get(metric)
    if e is None:
        return f"– ({cell.note})" if cell.note else "–"
    ci = f" ± {(e.high - e.low) / 2:.1f}" if e.has_interval else ""  # one seed: no interval
    flag = " INACTIVE" if cell.priorities.startswith("inactive") else ""
    flag += " DIVERGED" if cell.values.startswith("diverged") else ""
    flag += " Q-OUT" if cell.values.startswith("out of range") else ""
    return f"{e.value:.1f}{ci} (n={cell.seeds}){flag}"


def score_table(suite: Suite, mode: str, groups: Sequence[Group], outcomes: Sequence[GroupResult]) -> ScoreTable:
    """Rows targets, columns per_types, read back from the run directories of `groups`."""
    status = {r.group.out: r for r in outcomes}
    metrics = ("d4rl_score", "normalized_score_x100") if suite.metric == "d4rl_score" else (suite.metric,)
    per_types = tuple(dict.fromkeys(g.per_type for g in groups))
    by_cell: dict[tuple[str, str], list[Group]] = {}
    for g in groups:
        by_cell.setdefault((g.target.source, g.per_type), []).append(g)
    rows: dict[str, tuple[Target, dict[str, Cell]]] = {}
    for (source, per_type), cell_groups in by_cell.items():
        _, cells = rows.setdefault(source, (cell_groups[0].target, {}))
        cells[per_type] = _cell(cell_groups, metrics, status)
    return ScoreTable(
        suite.name, mode, metrics, per_types, tuple(rows.values()), tuple(reference_columns(suite.name, mode))
    )


def _cell(groups: Sequence[Group], metrics: Sequence[str], status: dict[Path, GroupResult]) -> Cell:
    """A (task, per_type)'s seeds over its runs: all of them, or none while one run is unfinished (a
    mean over the seeds that happen to be done would change meaning from one call to the next)."""
    loaded, missing = [], []
    for group in groups:
        try:
            run = results.load_run(group.out)
        except (results.UnfinishedRun, results.CorruptRun) as exc:
            outcome = status.get(group.out)
            why = outcome.status if outcome and outcome.status in ("failed", "busy") else str(exc)
            missing.append(f"{group.out.name}: {why}" if len(groups) > 1 else why)
            continue
        other = results.other_data(run, loaded)
        if other is not None:
            missing.append(f"{group.out.name} trained on other data than {other.path.name} (data fingerprint)")
        loaded.append(run)
    if missing:
        return Cell({}, 0, "; ".join(missing))
    estimates, per_seed, dropped = {}, {}, set()
    for m in metrics:
        by_seed = {s: v for run in loaded for s, v in run.scores(m, "auto").items()}  # online: ROER's last-N mean
        dropped |= {s for s, v in by_seed.items() if not math.isfinite(v)}
        by_seed = {s: v for s, v in sorted(by_seed.items()) if math.isfinite(v)}
        if by_seed:
            estimates[m] = stats.t_interval(list(by_seed.values()))
            per_seed[m] = by_seed
    notes = [f"non-finite score of seed {', '.join(map(str, sorted(dropped)))} left out"] if dropped else []
    notes += [] if estimates else ["no final evaluation"]
    notes += [  # train(stop_diverged=True) ended it early: its score is from that step
        f"{g.out.name if len(groups) > 1 else 'run'} stopped at step {run.stopped_at:,} of {g.config.steps:,}"
        " (diverged)"
        for g, run in zip(groups, loaded, strict=True)
        if run.stopped_at is not None
    ]
    return Cell(
        estimates,
        sum(len(run.final) for run in loaded),
        "; ".join(notes),
        priorities=results.pooled_activity_status(loaded),
        values=results.pooled_values_status(loaded),
        per_seed=per_seed,
        runs=tuple(os.path.relpath(g.out) for g in groups),
    )


def write_table(table: ScoreTable, results_dir: Path) -> list[str]:
    """Markdown, CSV and JSON beside the runs (atomic: concurrent benches leave whole files)."""
    stem = Path(results_dir) / f"bench-{table.suite}-{table.mode}"
    headers, rows = table.headers(), table.text_rows()
    md = f"# {table.suite} ({table.mode})\n\n" + results.markdown_table(headers, rows)
    md += "\n" + "".join(f"- {line}\n" for line in table.legend())
    written = [
        results.write_text(stem.with_suffix(".md"), md),
        results.write_text(stem.with_suffix(".csv"), results.csv_text(*table.csv_rows())),
        results.write_text(stem.with_suffix(".json"), json.dumps(table.to_json(), indent=2) + "\n"),
    ]
    return [str(p) for p in written]


# ---------------------------------------------------------------------------------- a whole sweep


@dataclass(frozen=True)
class Sweep:
    """What one `fdivrl bench` did: its table, every group's outcome, the files and what was missing."""

    table: ScoreTable
    outcomes: list[GroupResult]
    files: list[str]
    missing: list[str]


def prepare(
    suite: str,
    per_types: Sequence[str],
    seeds: Sequence[int],
    preset: str = "quick",
    mode: str | None = None,
    results_dir: Path = Path("results"),
    tasks: Sequence[str] = (),
    datasets: Sequence[str] = (),
    seeds_per_run: int | None = None,
    stop_diverged: bool = False,
    **overrides: Any,
) -> tuple[Suite, str, list[Group], list[str]]:
    """Resolve a sweep before anything runs (every config validated, data found): the suite, the
    mode, its groups and one message per dataset left out."""
    spec = select_tasks(load_suite(suite), list(tasks))
    mode = spec.modes[0] if mode is None else checks.canonical(mode, spec.modes)
    checks.choice("mode", mode, spec.modes)
    C.apply_options(C.TrainConfig(), _options(overrides))  # counts and choices, before data
    chosen = list(dict.fromkeys(D.get(p).name for p in per_types))

    def planned(targets: Sequence[Target]) -> list[Group]:
        return plan(targets, chosen, list(seeds), preset, mode, results_dir, seeds_per_run, stop_diverged, **overrides)

    def pending(target: Target) -> str | None:
        """None when every group of the target is finished; else which are not, if some are."""
        groups = planned([target])
        left = [(g, state) for g in groups if (state := planned_state(g)) != "finished"]
        if not left:
            return None
        if len(left) == len(groups):
            return ""
        shown = "; ".join(f"{g.out.name}: {state}" for g, state in left)
        return (
            f" ({len(groups) - len(left)} of the sweep's {len(groups)} runs on it are finished, these need it: {shown})"
        )

    targets, missing = resolve_targets(spec, mode, list(dict.fromkeys(datasets)), pending)
    check_targets(targets, missing)
    groups = planned(targets)
    return spec, mode, groups, missing


def run_sweep(
    spec: Suite,
    mode: str,
    groups: Sequence[Group],
    missing: Sequence[str],
    results_dir: Path,
    on_result: Callable[[GroupResult], None] = lambda r: None,
    reporter: Callable[[Group], Any] | None = None,
    backend: str = "local",
    address: str | None = None,
    cpus_per_task: float = 1.0,
    workers: int = 1,
) -> Sweep:
    """Run the groups (finished ones are skipped) and write the table next to them."""
    if backend == "ray":
        outcomes = run_ray(groups, on_result, address=address, cpus_per_task=cpus_per_task)
    elif workers > 1:
        from fdivrl.analysis.parallel import run_pinned  # it imports this module

        outcomes = run_pinned(groups, on_result, workers)
    else:
        outcomes = run_local(groups, on_result, reporter)
    table = score_table(spec, mode, groups, outcomes)
    return Sweep(table, outcomes, write_table(table, Path(results_dir)), list(missing))
