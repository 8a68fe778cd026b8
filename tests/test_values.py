"""The value-divergence rule (fdivrl/analysis/values.py): mean Q must stay where a return can be."""

from __future__ import annotations

import pytest

from fdivrl.analysis import results, values


@pytest.mark.parametrize(
    ("rewards", "discount", "expected"),
    [((-1.0, 0.0), 0.99, (-100.0, 0.0)), ((0.0, 1.0), 0.99, (0.0, 100.0)), ((0.5, 1.0), 0.9, (0.5, 10.0))],
)
def test_return_range_holds_every_discounted_return(rewards, discount, expected):
    assert values.return_range(*rewards, discount) == pytest.approx(expected)


def rows(q_by_seed: dict[int, list[float]]) -> list[dict]:
    return [{"step": 10 * (i + 1), "seed": s, "q_mean": q} for s, qs in q_by_seed.items() for i, q in enumerate(qs)]


def test_a_seed_that_leaves_the_band_is_diverged_from_that_step_on():
    # range [-100, 0], band [-200, 100]: 100 is still in it, 100.5 is not, and coming back does not undo it
    out = values.check(rows({0: [-20.0, -30.0, 100.0], 1: [-20.0, 100.5, -50.0]}), (-100.0, 0.0))
    assert out["status"] == "diverged in 1/2 seeds" and out["return_range"] == [-100.0, 0.0]
    seeds = [(s["seed"], s["diverged_at"], s["q_extreme"]) for s in out["per_seed"]]
    assert seeds == [(0, None, 100.0), (1, 20, 100.5)]
    assert values.check(rows({0: [-250.0], 1: [500.0]}), (-100.0, 0.0))["status"] == "diverged"
    assert values.check(rows({0: [-199.0, 99.0]}), (-100.0, 0.0))["status"] == "out of range"


def test_a_seed_out_of_range_by_less_than_the_width_is_marked_but_not_diverged():
    # range [-100, 0] with 2 % slack: 2 is within it, 2.5 is out; a divergence elsewhere outranks it
    assert values.check(rows({0: [-20.0, 2.0, -101.9]}), (-100.0, 0.0))["status"] == "bounded"
    out = values.check(rows({0: [-20.0, 2.0], 1: [-20.0, 2.5, 35.0, -5.0]}), (-100.0, 0.0))
    assert out["status"] == "out of range in 1/2 seeds"
    assert [(s["left_at"], s["diverged_at"], s["q_extreme"]) for s in out["per_seed"]] == [
        (None, None, 2.0),
        (20, None, 35.0),
    ]
    (line,) = values.describe(out)
    assert "values out of range in 1/2 seeds" in line and "seed 1 at step 20 (mean Q reached 35)" in line
    both = values.check(rows({0: [-20.0, 35.0], 1: [-20.0, 4057.0]}), (-100.0, 0.0))
    assert both["status"] == "diverged in 1/2 seeds"
    assert values.status([False, False], [True, True]) == "out of range"
    assert values.status([False, False], [False, False]) == "bounded" and values.status([], []) == "not measured"


def test_a_clipped_run_records_how_much_its_clip_cuts_at_the_end():
    """Values kept in range by --clip-targets are bounded by construction: the check keeps each seed's last
    clip fraction beside them, and adds nothing for runs without the clip."""
    logged = rows({1: [-30.0, -1.0], 0: [-20.0, -5.0]})
    clipped = [{**r, "target_clip_frac": (0.3 if r["step"] == 10 else 0.1) + 0.01 * r["seed"]} for r in logged]
    out = values.check(clipped, (-100.0, 0.0))
    assert out["status"] == "bounded" and out["target_clip_frac"] == [0.1, 0.11]  # the last step's, seed 0 first
    assert values.check(clipped, None)["target_clip_frac"] == [0.1, 0.11]  # with no bounds to check Q against
    assert "target_clip_frac" not in values.check(rows({0: [-20.0]}), (-100.0, 0.0))


def test_without_bounds_or_q_nothing_is_claimed():
    assert values.check(rows({0: [1e6]}), None)["status"] == "not measured"
    assert values.check([{"step": 10, "seed": 0, "critic_loss": 1.0}], (-100.0, 0.0))["status"] == "not measured"


def test_bounds_come_from_the_task_s_suite_and_the_run_s_shift_and_discount():
    antmaze = {"mode": "offline", "dataset": "fdivrl/antmaze/medium-play-v1", "data": {"reward_shift": -1.0}}
    hopper = {"mode": "online", "env": "Hopper-v5"}
    other = {"mode": "offline", "dataset": "someone/else-v0"}
    assert values.bounds_of(results.task_of(antmaze), antmaze) == pytest.approx((-100.0, 0.0))
    slower = {**antmaze, "learner": {"discount": 0.9}}
    assert values.bounds_of(results.task_of(slower), slower) == pytest.approx((-10.0, 0.0))
    unshifted = {**antmaze, "dataset": "D4RL/antmaze/umaze-v1", "data": {}}
    assert values.bounds_of(results.task_of(unshifted), unshifted) == pytest.approx((0.0, 100.0))
    assert values.bounds_of(results.task_of(hopper), hopper) is None  # MuJoCo rewards have no stated bounds
    assert values.bounds_of(results.task_of(other), other) is None


def test_describe_names_each_diverged_seed_and_stays_quiet_otherwise():
    out = values.check(rows({0: [-20.0], 1: [-20.0, 4057.0]}), (-100.0, 0.0))
    (line,) = values.describe(out)
    assert "returns lie in [-100, 0]" in line and "seed 1 at step 20 (mean Q reached 4,057)" in line
    assert "seed 0" not in line
    assert values.describe(values.check(rows({0: [-20.0]}), (-100.0, 0.0))) == []
