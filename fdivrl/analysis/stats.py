"""Statistics for comparing per_types over few seeds (Agarwal et al. 2021, "Deep RL at the Edge of
the Statistical Precipice", the rliable library's definitions).

Scores come per task as 1-D arrays of per-run scores (tasks may have different numbers of runs).
Point statistics use scipy (trim_mean, mannwhitneyu); confidence intervals use rliable's stratified
bootstrap (runs resampled with replacement within each task, independently per task and per
algorithm) with the percentile method. rliable itself is not a dependency: it would pull in arch,
pandas, seaborn and statsmodels for the handful of lines below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

TaskScores = Sequence[np.ndarray]
"""One 1-D array of run scores per task."""
MIN_RUNS = 2
"""Fewest runs per task a bootstrap interval needs: with one, every resample is that run, and the
interval would have zero width, as if the estimate were certain."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% (by default) confidence interval; low and high are NaN when there
    is no interval (fewer than MIN_RUNS runs in some task)."""

    value: float
    low: float
    high: float
    n: int | None = None
    """The fewest runs behind the estimate in any task (None: not recorded)."""

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready: a missing interval is None (JSON has no NaN)."""
        if self.has_interval:
            return {"value": self.value, "low": self.low, "high": self.high}
        return {"value": self.value, "low": None, "high": None}


def _tasks(scores: TaskScores) -> list[np.ndarray]:
    tasks = [np.asarray(t, dtype=np.float64).reshape(-1) for t in scores]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one run score")
    return tasks


def mean(scores: TaskScores) -> float:
    """Mean over tasks of the per-task mean score."""
    return float(np.mean([t.mean() for t in _tasks(scores)]))


def median(scores: TaskScores) -> float:
    """Median over tasks of the per-task mean score."""
    return float(np.median([t.mean() for t in _tasks(scores)]))


def iqm(scores: TaskScores) -> float:
    """Interquartile mean: the 25%-trimmed mean of all runs of all tasks pooled."""
    return float(scipy.stats.trim_mean(np.concatenate(_tasks(scores)), 0.25))


def optimality_gap(scores: TaskScores, gamma: float = 100.0) -> float:
    """How far runs fall short of `gamma` on average (scores above it count as `gamma`)."""
    return float(gamma - np.mean(np.minimum(np.concatenate(_tasks(scores)), gamma)))


def probability_of_improvement(x: TaskScores, y: TaskScores) -> float:
    """P(X > Y) with ties counting half (Mann-Whitney U / (n·m)) per task, averaged over tasks."""
    xs, ys = _tasks(x), _tasks(y)
    if len(xs) != len(ys):
        raise ValueError(f"x has {len(xs)} tasks and y {len(ys)}")
    return float(
        np.mean(
            [
                scipy.stats.mannwhitneyu(a, b, alternative="greater").statistic / (a.size * b.size)
                for a, b in zip(xs, ys, strict=True)
            ]
        )
    )


def t_interval(values: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean over seeds ± Student-t interval (what a results table reports per task); NaN for one seed."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    m = float(v.mean())
    if v.size < 2:
        return Estimate(m, np.nan, np.nan)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return Estimate(m, m - half, m + half)


# ---------------------------------------------------------------------------------- bootstrap

# vectorized forms: each task's scores arrive as an array (reps, n_runs) of resamples


def _v_mean(tasks: list[np.ndarray]) -> np.ndarray:
    return np.mean([t.mean(axis=1) for t in tasks], axis=0)


def _v_median(tasks: list[np.ndarray]) -> np.ndarray:
    return np.median([t.mean(axis=1) for t in tasks], axis=0)


def _v_iqm(tasks: list[np.ndarray]) -> np.ndarray:
    return scipy.stats.trim_mean(np.concatenate(tasks, axis=1), 0.25, axis=1)


def _v_gap(gamma: float) -> Callable[[list[np.ndarray]], np.ndarray]:
    return lambda tasks: gamma - np.minimum(np.concatenate(tasks, axis=1), gamma).mean(axis=1)


def _v_improvement(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    per_task = [
        (a[:, :, None] > b[:, None, :]).mean(axis=(1, 2)) + 0.5 * (a[:, :, None] == b[:, None, :]).mean(axis=(1, 2))
        for a, b in zip(xs, ys, strict=True)
    ]
    return np.mean(per_task, axis=0)


def _resample(tasks: list[np.ndarray], reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified bootstrap: each task's runs drawn with replacement, as many as it has."""
    return [t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks]


def _interval(point: float, samples: np.ndarray, confidence: float, n: int) -> Estimate:
    """The percentile interval, or none (NaN bounds) when some task has fewer than MIN_RUNS runs."""
    if n < MIN_RUNS:
        return Estimate(point, math.nan, math.nan, n)
    low, high = np.percentile(samples, [50 * (1 - confidence), 50 * (1 + confidence)])
    return Estimate(point, float(low), float(high), n)


def aggregate_estimates(
    scores: TaskScores, gamma: float | None = 100.0, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Estimate]:
    """mean, median, IQM and (unless `gamma` is None) optimality gap, each with a bootstrap CI.

    All four statistics share the same bootstrap resamples, as rliable's interval estimates do.
    """
    tasks = _tasks(scores)
    n = min(t.size for t in tasks)
    samples = _resample(tasks, reps, np.random.default_rng(seed))
    out = {
        "mean": _interval(mean(tasks), _v_mean(samples), confidence, n),
        "median": _interval(median(tasks), _v_median(samples), confidence, n),
        "iqm": _interval(iqm(tasks), _v_iqm(samples), confidence, n),
    }
    if gamma is not None:
        out["optimality_gap"] = _interval(optimality_gap(tasks, gamma), _v_gap(gamma)(samples), confidence, n)
    return out


def improvement_estimate(
    x: TaskScores, y: TaskScores, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """P(X > Y) with a CI from resampling X and Y independently within each task (none when either
    side has fewer than MIN_RUNS runs in some task)."""
    xs, ys = _tasks(x), _tasks(y)
    point = probability_of_improvement(xs, ys)
    rng = np.random.default_rng(seed)
    n = min(t.size for t in xs + ys)
    return _interval(point, _v_improvement(_resample(xs, reps, rng), _resample(ys, reps, rng)), confidence, n)


def bootstrap_mean_band(runs: np.ndarray, reps: int = 2_000, confidence: float = 0.95, seed: int = 0) -> np.ndarray:
    """Mean over runs and its bootstrap CI at every point of a curve: runs (n_runs, n_points) -> (3, n_points).

    With fewer than MIN_RUNS runs the CI rows are NaN: there is no interval to draw."""
    runs = np.asarray(runs, dtype=np.float64)
    if runs.shape[0] < MIN_RUNS:
        nan = np.full(runs.shape[1:], np.nan)
        return np.stack([runs.mean(axis=0), nan, nan])
    rng = np.random.default_rng(seed)
    means = runs[rng.integers(0, runs.shape[0], size=(reps, runs.shape[0]))].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    return np.stack([runs.mean(axis=0), low, high])
