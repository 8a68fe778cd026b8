"""rliable-style statistics against values worked out by hand on small fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest

from fdivrl.analysis import stats

# three tasks, four runs each; pooled and sorted: 0 5 5 5 5 10 20 30 40 50 60 100
TASKS = [np.array([0.0, 10, 20, 30]), np.array([40.0, 50, 60, 100]), np.array([5.0, 5, 5, 5])]


def test_point_statistics_match_hand_computed_values():
    assert stats.mean(TASKS) == pytest.approx((15 + 62.5 + 5) / 3)  # mean of task means
    assert stats.median(TASKS) == pytest.approx(15.0)  # median of task means 5, 15, 62.5
    assert stats.iqm(TASKS) == pytest.approx((5 + 5 + 10 + 20 + 30 + 40) / 6)  # middle 6 of 12
    # min(x, 50) sums to 270 over 12 runs
    assert stats.optimality_gap(TASKS, gamma=50.0) == pytest.approx(50 - 270 / 12)
    assert stats.optimality_gap(TASKS, gamma=100.0) == pytest.approx(100 - 330 / 12)


def test_probability_of_improvement_counts_ties_half():
    # task 1: x=1 beats 0; x=2 beats 0 and ties 2, 2; x=3 beats all: (1 + 2 + 3) / 9
    x = [np.array([1.0, 2, 3]), np.array([5.0])]
    y = [np.array([2.0, 2, 0]), np.array([5.0])]
    assert stats.probability_of_improvement(x, y) == pytest.approx((6 / 9 + 0.5) / 2)
    assert stats.probability_of_improvement(y, x) == pytest.approx((3 / 9 + 0.5) / 2)
    with pytest.raises(ValueError, match="tasks"):
        stats.probability_of_improvement(x, y[:1])


def test_t_interval():
    e = stats.t_interval(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2 dof) * sd 1 / sqrt(3)
    assert (e.value, e.low, e.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    one = stats.t_interval(np.array([7.0]))
    assert one.value == 7.0 and np.isnan(one.low) and np.isnan(one.high)


def test_bootstrap_is_stratified_by_task():
    # every task constant: any within-task resample gives the same value, so the CIs are points;
    # an unstratified bootstrap would mix tasks and give a wide interval for the mean
    tasks = [np.zeros(3), np.full(3, 100.0)]
    est = stats.aggregate_estimates(tasks, gamma=100.0, reps=500)
    assert set(est) == {"mean", "median", "iqm", "optimality_gap"}
    for name, value in (("mean", 50.0), ("median", 50.0), ("iqm", 50.0), ("optimality_gap", 50.0)):
        assert (est[name].value, est[name].low, est[name].high) == pytest.approx((value, value, value)), name
    assert "optimality_gap" not in stats.aggregate_estimates(tasks, gamma=None, reps=100)


def test_bootstrap_intervals_bracket_the_estimate_and_are_reproducible():
    a = stats.aggregate_estimates(TASKS, reps=2000, seed=3)
    b = stats.aggregate_estimates(TASKS, reps=2000, seed=3)
    assert a == b
    for name, e in a.items():
        assert e.low <= e.value <= e.high, name
        assert e.low < e.high, name
    assert a["mean"].low >= 5 and a["mean"].high <= 62.5  # within the range of possible resample means


def test_improvement_interval():
    dominant = stats.improvement_estimate([np.array([3.0, 4.0])], [np.array([1.0, 2.0])], reps=300)
    assert (dominant.value, dominant.low, dominant.high) == (1.0, 1.0, 1.0)
    x, y = [np.array([1.0, 2, 3])], [np.array([2.0, 2, 0])]
    e = stats.improvement_estimate(x, y, reps=3000)
    assert e.value == pytest.approx(6 / 9) and 0 <= e.low < e.value < e.high <= 1


def test_bootstrap_band_of_curves():
    runs = np.array([[0.0, 10.0, 20.0], [0.0, 30.0, 20.0]])
    band = stats.bootstrap_mean_band(runs, reps=500)
    np.testing.assert_allclose(band[0], [0.0, 20.0, 20.0])
    np.testing.assert_allclose(band[1:, 0], [0.0, 0.0])  # identical runs: no spread
    assert band[1, 1] == pytest.approx(10.0) and band[2, 1] == pytest.approx(30.0)  # resamples of 2 runs


def test_empty_task_is_refused():
    with pytest.raises(ValueError, match="at least one run"):
        stats.mean([np.array([1.0]), np.array([])])
