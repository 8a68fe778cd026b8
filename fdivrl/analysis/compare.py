"""`fdivrl compare`: rliable-style statistics and plots of per_types from the runs under a results directory.

Each seed contributes one score, chosen by ``score`` (``--score``): "final" is its final evaluation,
"last" the mean of its last N evaluations (N = online.score_last; summary.json's score.per_seed, the
protocol ROER reports for online runs), and "auto" (the default) takes "last" for online and finetune
runs that have it and "final" otherwise (offline runs, older online runs). The tables and stats.json say
which score every used run contributed. A task is a (dataset or env, mode) pair; the aggregate over
tasks uses only the tasks every compared per_type has runs on (stratified bootstrap needs the same tasks
on both sides), and says which tasks it left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from fdivrl import suites
from fdivrl.analysis import activity, plots, results, stats, values
from fdivrl.errors import ConfigError
from fdivrl.runs import rundir as runs

STATISTICS = ("mean", "median", "iqm", "optimality_gap")
SCORE_METRICS = ("auto", "d4rl_score", "normalized_score_x100", "mean_return", "success_rate")
OUTSIDE_SUITES = "mean_return"
"""What "auto" ranks a run by when no suite holds its task or trains its mode: every env has a return, not
every env a goal."""
# the optimality gap's threshold: the top of the score's scale (none for returns)
GAMMA = {"d4rl_score": 100.0, "normalized_score_x100": 100.0, "success_rate": 1.0}
AGGREGATE = "all tasks"
SCORE_PROTOCOLS = results.SCORE_PROTOCOLS


@dataclass(frozen=True)
class Comparison:
    per_types: tuple[str, ...]
    metric: str
    score: str
    """The score protocol asked for: "auto", "final" or "last" (see the module docstring)."""
    scores: dict[str, dict[str, np.ndarray]]
    """task -> per_type -> scores, one per seed (each used run's per `run_score`)."""
    per_task: dict[str, dict[str, dict[str, stats.Estimate]]]
    """task (and AGGREGATE) -> per_type -> statistic -> estimate."""
    improvement: dict[str, dict[str, stats.Estimate]]
    """'X > Y' -> task (and AGGREGATE) -> P(X > Y)."""
    aggregate_tasks: tuple[str, ...]
    notes: tuple[str, ...]
    used: tuple[results.Run, ...]
    skipped: tuple[results.Skipped, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "per_types": list(self.per_types),
            "metric": self.metric,
            "score": self.score,
            "score_description": score_description(self),
            "ci": "95% percentile interval, stratified bootstrap over runs within tasks (rliable)",
            "statistics": {
                t: {p: {s: e.to_dict() for s, e in by_stat.items()} for p, by_stat in by_type.items()}
                for t, by_type in self.per_task.items()
            },
            "probability_of_improvement": {
                pair: {t: e.to_dict() for t, e in by_task.items()} for pair, by_task in self.improvement.items()
            },
            "activity_rule": activity.RULE,
            "activity": {t: {p: activity_status(self, t, p) for p in by} for t, by in self.per_task.items()},
            "values_rule": values.RULE,
            "values": {t: {p: values_status(self, t, p) for p in by} for t, by in self.per_task.items()},
            "aggregate_tasks": list(self.aggregate_tasks),
            "scores": {t: {p: v.tolist() for p, v in by_type.items()} for t, by_type in self.scores.items()},
            "notes": list(self.notes),
            "used": [
                {
                    "path": str(r.path),
                    "per_type": r.per_type,
                    "task": task_label(r),
                    "seeds": list(r.scores(self.metric, self.score)),
                    "score": self.run_score(r),
                    "priorities": r.activity_status,
                    "values": r.values_status,
                    "activity": {str(s): a for s, a in r.activity.items()},
                }
                for r in self.used
            ],
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
        }

    def run_score(self, run: results.Run) -> str:
        """Which score `run` contributes: "final evaluation" or "mean of the last N evaluations"."""
        return describe_score(run, self.metric, self.score)


def task_label(run: results.Run) -> str:
    return run.task if run.mode == "offline" else f"{run.task} ({run.mode})"


def describe_score(run: results.Run, metric: str, score: str) -> str:
    if run.protocol(metric, score) == "last":
        return f"mean of the last {run.n_evaluations} evaluations"
    return "final evaluation"


def score_description(c: Comparison) -> str:
    """What a seed's score is over the used runs, e.g. "final evaluation" or, when the runs differ,
    "final evaluation (offline); mean of the last 10 evaluations (finetune, online)"."""
    modes: dict[str, set[str]] = {}
    for run in c.used:
        modes.setdefault(c.run_score(run), set()).add(run.mode)
    if len(modes) == 1:
        return next(iter(modes))
    return "; ".join(f"{what} ({', '.join(sorted(m))})" for what, m in sorted(modes.items()))


def auto_metric(compared: list[results.Run]) -> str:
    """The score the compared runs' suite ranks by (see suites.metric_of): one statistic over tasks needs
    one scale, so runs that suites rank differently need --metric."""
    by_metric: dict[str, set[str]] = {}
    for run in compared:
        by_metric.setdefault(suites.metric_of(run.task, run.mode) or OUTSIDE_SUITES, set()).add(run.task)
    if len(by_metric) > 1:
        shown = "; ".join(f"{m}: {', '.join(sorted(t))}" for m, t in sorted(by_metric.items()))
        raise ConfigError(f"--metric auto: the runs' tasks are ranked by different scores ({shown}); pass --metric")
    return next(iter(by_metric), OUTSIDE_SUITES)


def select(
    scan: results.Scan, per_types: tuple[str, ...], metric: str, score: str = "auto"
) -> tuple[list[results.Run], list[results.Skipped]]:
    """The runs to compare, scored by protocol `score`; every other run directory is skipped with its reason."""
    used: list[results.Run] = []
    skipped = list(scan.skipped)
    taken: dict[tuple[str, str, int], Path] = {}
    for run in scan.runs:
        if run.per_type not in per_types:
            skipped.append(results.Skipped(run.path, f"per_type {run.per_type} is not compared"))
            continue
        scores = run.scores(metric, score)
        if not scores:
            missing = (
                f"per-seed mean of the last evaluations ({metric})"
                if run.protocol(metric, score) == "last"
                else f"final {metric}"
            )
            skipped.append(results.Skipped(run.path, f"no {missing} in summary.json"))
            continue
        bad = {s: v for s, v in scores.items() if not math.isfinite(v)}
        if bad:  # a NaN would turn every statistic of its task into NaN, silently
            shown = ", ".join(f"seed {s}: {v}" for s, v in sorted(bad.items()))
            skipped.append(results.Skipped(run.path, f"non-finite {metric} in summary.json ({shown})"))
            continue
        try:
            for log in (runs.EVAL_FILE, runs.METRICS_FILE):
                results.read_log(run.path / log)
        except results.CorruptRun as exc:
            skipped.append(results.Skipped(run.path, f"corrupt: {exc}"))
            continue
        cell = (task_label(run), run.per_type)
        keys = [(*cell, s) for s in scores]
        clash = next((taken[k] for k in keys if k in taken), None)
        if clash is not None:
            skipped.append(
                results.Skipped(run.path, f"duplicate seeds of {run.per_type} on {task_label(run)} ({clash})")
            )
            continue
        other = results.other_data(run, [u for u in used if (task_label(u), u.per_type) == cell])
        if other is not None:
            skipped.append(results.Skipped(run.path, f"trained on other data than {other.path} (data fingerprint)"))
            continue
        taken.update(dict.fromkeys(keys, run.path))
        used.append(run)
    return used, skipped


def compare(
    results_dir: Path,
    per_types: tuple[str, ...],
    metric: str = "auto",
    reps: int = 10_000,
    seed: int = 0,
    score: str = "auto",
) -> Comparison:
    """Statistics of every compared per_type per task and over tasks, from the runs on disk; `score` picks
    each seed's score ("auto", "final" or "last", see the module docstring)."""
    if metric not in SCORE_METRICS:
        raise ConfigError(f"--metric {metric!r} is not valid; choose one of: {', '.join(SCORE_METRICS)}")
    if score not in SCORE_PROTOCOLS:
        raise ConfigError(f"--score {score!r} is not valid; choose one of: {', '.join(SCORE_PROTOCOLS)}")
    if not Path(results_dir).is_dir():
        raise ConfigError(f"--results {results_dir} is not a directory")
    scan = results.scan(results_dir)
    if metric == "auto":
        metric = auto_metric([run for run in scan.runs if run.per_type in per_types])
    used, skipped = select(scan, per_types, metric, score)
    scores: dict[str, dict[str, list[float]]] = {}
    for run in used:
        by_type = scores.setdefault(task_label(run), {})
        by_type.setdefault(run.per_type, []).extend(run.scores(metric, score).values())
    absent = [p for p in per_types if not any(p in by for by in scores.values())]
    if absent:
        found = f" (skipped {len(skipped)} run director{'y' if len(skipped) == 1 else 'ies'})" if skipped else ""
        raise ConfigError(f"no finished runs of {', '.join(absent)} under {results_dir}{found}")
    arrays = {t: {p: np.asarray(by[p]) for p in per_types if p in by} for t, by in sorted(scores.items())}
    gamma = GAMMA.get(metric)
    per_task: dict[str, dict[str, dict[str, stats.Estimate]]] = {
        t: {p: stats.aggregate_estimates([v], gamma, reps, seed=seed) for p, v in by.items()}
        for t, by in arrays.items()
    }
    common = tuple(t for t, by in arrays.items() if set(per_types) <= set(by))
    notes = [
        f"{t}: left out of the aggregate (no runs of {', '.join(sorted(set(per_types) - set(by)))})"
        for t, by in arrays.items()
        if t not in common
    ]
    for run in used:
        bad = results.non_finite(results.read_log(run.path / runs.EVAL_FILE), metric)
        if bad:
            notes.append(
                f"{run.path}: {bad} non-finite {metric} value(s) in eval.jsonl, left out of its learning curve"
            )
    for t in arrays:
        rules = {describe_score(run, metric, score) for run in used if task_label(run) == t}
        if len(rules) > 1:
            notes.append(f"{t}: runs scored by different rules ({'; '.join(sorted(rules))}), compare with care")
    if common:
        per_task[AGGREGATE] = {
            p: stats.aggregate_estimates([arrays[t][p] for t in common], gamma, reps, seed=seed) for p in per_types
        }
    improvement: dict[str, dict[str, stats.Estimate]] = {}
    for x, y in permutations(per_types, 2):
        by_task = {
            t: stats.improvement_estimate([by[x]], [by[y]], reps, seed=seed)
            for t, by in arrays.items()
            if x in by and y in by
        }
        if common:
            by_task[AGGREGATE] = stats.improvement_estimate(
                [arrays[t][x] for t in common], [arrays[t][y] for t in common], reps, seed=seed
            )
        if by_task:
            improvement[f"{x} > {y}"] = by_task
    return Comparison(
        per_types=per_types,
        metric=metric,
        score=score,
        scores=arrays,
        per_task=per_task,
        improvement=improvement,
        aggregate_tasks=common,
        notes=tuple(notes),
        used=tuple(used),
        skipped=tuple(skipped),
    )


# ---------------------------------------------------------------------------------- tables


def fmt(e: stats.Estimate) -> str:
    """'value [low, high]', or 'value (n = 1: no interval)' when there were too few runs for one."""
    if not e.has_interval:
        return f"{e.value:.3g} ({no_interval(e.n)})"
    return f"{e.value:.3g} [{e.low:.3g}, {e.high:.3g}]"


def no_interval(n: int | None) -> str:
    return "no interval" if n is None else f"n = {n}: no interval"


def _chosen(c: Comparison, task: str, per_type: str) -> list[results.Run]:
    """The used runs of `per_type` on `task` (on every aggregated task for AGGREGATE)."""
    tasks = c.aggregate_tasks if task == AGGREGATE else (task,)
    return [r for r in c.used if r.per_type == per_type and task_label(r) in tasks]


def activity_status(c: Comparison, task: str, per_type: str) -> str:
    """The activity verdict of a per_type's used runs on a task (on every aggregated task for AGGREGATE)."""
    chosen = _chosen(c, task, per_type)
    return results.pooled_activity_status(chosen) if chosen else "–"


def values_status(c: Comparison, task: str, per_type: str) -> str:
    """The value-divergence verdict of a per_type's used runs on a task (every aggregated task for AGGREGATE)."""
    chosen = _chosen(c, task, per_type)
    return results.pooled_values_status(chosen) if chosen else "–"


def statistics_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    gap = "optimality_gap" in next(iter(next(iter(c.per_task.values())).values()))
    headers = ["task", "per_type", "runs", "priorities", "values", "mean", "median", "IQM"]
    headers += ["optimality gap"] if gap else []
    rows = []
    for task, by_type in c.per_task.items():
        for p, est in by_type.items():
            n = sum(c.scores[t][p].size for t in c.aggregate_tasks) if task == AGGREGATE else c.scores[task][p].size
            verdicts = [activity_status(c, task, p), values_status(c, task, p)]
            rows.append([task, p, str(n), *verdicts, *(fmt(est[s]) for s in STATISTICS if s in est)])
    return headers, rows


def activity_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Per task and per_type: each seed's final ESS fraction, fractions at floor and cap, loss-weight spread."""
    headers = ["task", "per_type", "priorities", "ESS fraction", "at floor", "at cap", "batch loss-weight CV"]
    rows = []
    for task in c.scores:
        for p in c.scores[task]:
            seeds = [a for r in c.used if r.per_type == p and task_label(r) == task for a in r.activity.values()]

            def span(key: str, pct: bool = False, seeds: list = seeds) -> str:
                vals = [a[key] * (100 if pct else 1) for a in seeds if key in a]
                if not vals:
                    return "–"
                unit = "%" if pct else ""
                lo, hi = min(vals), max(vals)
                return f"{lo:.3g}{unit}" if lo == hi else f"{lo:.3g}–{hi:.3g}{unit}"

            rows.append(
                [
                    task,
                    p,
                    activity_status(c, task, p),
                    span("ess_frac"),
                    span("floor_frac", True),
                    span("cap_frac", True),
                    span("loss_weight_cv"),
                ]
            )
    return headers, rows


def inactive_per_types(c: Comparison) -> dict[str, set[str]]:
    """task -> the per_types whose priorities did not act there."""
    return {t: {p for p in c.per_types if activity_status(c, t, p).startswith("inactive")} for t in c.scores}


def improvement_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """P(X > Y) per task; a per_type inactive on any task is labelled so in the pair's name, since its
    row compares that learner under uniform replay, not its priorities; a cell where either side's
    learner diverged on that task (on any aggregated task for AGGREGATE) says so, since it compares a
    divergence, and so does one where a side's values were out of range, since its scores come from
    values no return can have."""
    inactive = set().union(*inactive_per_types(c).values())

    def label(pair: str) -> str:
        return " > ".join(f"{p} (inactive)" if p in inactive else p for p in pair.split(" > "))

    def cell(pair: str, task: str, estimate: stats.Estimate) -> str:
        marks = []
        for word in ("diverged", "out of range"):
            sides = [p for p in pair.split(" > ") if values_status(c, task, p).startswith(word)]
            marks += [f"{', '.join(sides)} {word}"] if sides else []
        return fmt(estimate) + (f" ({'; '.join(marks)})" if marks else "")

    tasks = list(dict.fromkeys(t for by in c.improvement.values() for t in by))
    return ["P(X > Y)", *tasks], [
        [label(pair), *(cell(pair, t, by[t]) if t in by else "–" for t in tasks)] for pair, by in c.improvement.items()
    ]


def runs_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    rows = [
        [
            "used",
            str(r.path),
            f"{r.per_type} on {task_label(r)}, seeds {list(r.scores(c.metric, c.score))}: {c.run_score(r)}"
            + (f" (stopped at step {r.stopped_at:,}: every seed diverged)" if r.stopped_at is not None else ""),
        ]
        for r in c.used
    ]
    rows += [["skipped", str(s.path), s.reason] for s in c.skipped]
    return ["", "run directory", "what / why"], rows


def write_files(c: Comparison, out: Path, reps: int = 2_000) -> list[Path]:
    """stats.{md,csv,json}, learning curves and priority-weight plots (PNG and SVG) into `out`."""
    out = Path(out)
    sections = [
        ("Statistics", statistics_rows(c)),
        ("Priority activity (final, range over seeds)", activity_rows(c)),
        ("Probability of improvement", improvement_rows(c)),
        ("Runs", runs_rows(c)),
    ]
    md = f"# {' vs '.join(c.per_types)}: {c.metric}, {score_description(c)}\n\n"
    md += f"Scores: --score {c.score} (the runs table says which score each run contributed). "
    md += "95% CIs: stratified bootstrap, percentile method; none from a single run per task (n = 1). "
    md += f"Priorities {activity.RULE}; an inactive per_type trained with uniform replay, so its rows "
    md += "(marked inactive, and (inactive) in P(X > Y)) say nothing about its priorities. "
    md += f"Values {values.RULE}; a diverged per_type's rows (values diverged; P(X > Y) cells name it) "
    md += "measure the divergence, not the per_type; an out-of-range one's come from values no return can have.\n"
    for title, (headers, rows) in sections:
        md += f"\n## {title}\n\n" + results.markdown_table(headers, rows)
    if c.notes:
        md += "\n" + "".join(f"- {n}\n" for n in c.notes)
    long_rows = [
        [t, p, s, *_csv_values(e)] for t, by in c.per_task.items() for p, est in by.items() for s, e in est.items()
    ]
    long_rows += [
        [t, pair, "probability_of_improvement", *_csv_values(e)]
        for pair, by in c.improvement.items()
        for t, e in by.items()
    ]
    files = [
        results.write_text(out / "stats.md", md),
        results.write_text(
            out / "stats.csv", results.csv_text(["task", "per_type", "statistic", "value", "low", "high"], long_rows)
        ),
        results.write_text(out / "stats.json", json.dumps(c.to_json(), indent=2) + "\n"),
    ]
    inactive = inactive_per_types(c)
    files += plots.plot_learning_curves(out / "learning_curves", learning_curves(c, reps), c.metric, inactive)
    files += plots.plot_priority_weights(out / "priority_weights", priority_curves(c), inactive)
    return files


def _csv_values(e: stats.Estimate) -> list[float | str]:
    """value, low, high; empty bounds when there is no interval."""
    return [e.value, e.low, e.high] if e.has_interval else [e.value, "", ""]


# ---------------------------------------------------------------------------------- curves


def _aligned(per_seed: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values (n_seeds, n_steps)) over the steps every seed logged."""
    steps = sorted(set.intersection(*(set(c) for c in per_seed))) if per_seed else []
    if not steps:
        return None
    return np.asarray(steps), np.asarray([[c[s] for s in steps] for c in per_seed])


def learning_curves(c: Comparison, reps: int) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """task -> per_type -> (steps, [mean, CI low, CI high]) from eval.jsonl."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for task, by_type in _seed_curves(c, runs.EVAL_FILE, (c.metric,)).items():
        for p, keys in by_type.items():
            aligned = _aligned(keys[c.metric])
            if aligned is not None:
                out.setdefault(task, {})[p] = (aligned[0], stats.bootstrap_mean_band(aligned[1], reps))
    return out


def priority_curves(c: Comparison) -> dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """task -> per_type -> priority statistic -> (steps, seed-mean; min and max over seeds for the extremes)."""
    reduce = {"priority_weight_min": np.min, "priority_weight_max": np.max}
    out: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
    for task, by_type in _seed_curves(c, runs.METRICS_FILE, results.PRIORITY_KEYS).items():
        for p, keys in by_type.items():
            for key, per_seed in keys.items():
                aligned = _aligned(per_seed)
                if aligned is not None:
                    values = reduce.get(key, np.mean)(aligned[1], axis=0)
                    out.setdefault(task, {}).setdefault(p, {})[key] = (aligned[0], values)
    return out


def _seed_curves(
    c: Comparison, log: str, keys: tuple[str, ...]
) -> dict[str, dict[str, dict[str, list[dict[int, float]]]]]:
    """task -> per_type -> key -> one {step: value} per seed of the used runs."""
    out: dict[str, dict[str, dict[str, list[dict[int, float]]]]] = {}
    for run in c.used:
        records = results.read_log(run.path / log)
        for key in keys:
            per_seed = list(results.curves(records, key).values())
            out.setdefault(task_label(run), {}).setdefault(run.per_type, {}).setdefault(key, []).extend(per_seed)
    return out
