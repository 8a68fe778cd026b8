"""Replay priorities: sum-tree correctness, the ROER update formulas, importance weights, and that it
all runs under jit, scan and a seed vmap without copying the priority arrays every step."""

from __future__ import annotations

import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from fdivrl.errors import ConfigError
from fdivrl.learning import replay

WEIGHT = replay.ReplayConfig(mode="weight", scheme="avg")
SAMPLE = replay.ReplayConfig(mode="sample")
UNIFORM = replay.ReplayConfig(prioritized=False)

tree_set = jax.jit(replay.tree_set)
tree_sample = jax.jit(replay.tree_sample, static_argnums=2)


def assert_consistent(tree: replay.SumTree) -> None:
    """Every interior node equals the float32 sum of its children, bit for bit."""
    nodes = np.asarray(tree.nodes)
    n = replay.num_leaves(tree)
    parents = np.arange(1, n)
    np.testing.assert_array_equal(nodes[parents], nodes[2 * parents] + nodes[2 * parents + 1])


def tree_with(leaves: list[float]) -> replay.SumTree:
    return replay.tree_from_leaves(jnp.asarray(leaves, jnp.float32))


# -- config ------------------------------------------------------------------------------------


def test_config_defaults_are_valid_and_hashable() -> None:
    cfg = replay.ReplayConfig()
    assert cfg.validate() is cfg
    assert hash(cfg) == hash(replay.ReplayConfig())
    assert (cfg.mode, cfg.scheme, cfg.ema, cfg.alpha) == ("weight", "avg", 0.01, 0.4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "tree"}, "weight, sample"),
        ({"scheme": "mean"}, "avg, exp"),
        ({"ema": 0.0}, "ema"),
        ({"ema": 1.5}, "ema"),
        ({"ema": float("nan")}, "finite"),
        ({"alpha": -0.1}, "alpha"),
        ({"lower_clip": -1.0}, "lower_clip"),
        ({"lower_clip": 60.0, "max_clip": 50.0}, "lower_clip"),
        ({"max_clip": 0.0, "lower_clip": 0.0, "min_clip": 0.0}, "max_clip"),
        ({"min_clip": -1.0}, "min_clip"),
        ({"min_clip": 60.0}, "min_clip"),
        ({"importance_exponent": 1.5}, "importance_exponent"),
        ({"importance_exponent": -0.5}, "importance_exponent"),
        ({"prioritized": "yes"}, "prioritized"),
    ],
)
def test_config_validation_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        replay.ReplayConfig(**kwargs).validate()
    assert "\n" not in str(err.value)


def test_init_validates_config_and_capacity() -> None:
    with pytest.raises(ConfigError):
        replay.init(8, 8, replay.ReplayConfig(mode="bogus"))
    with pytest.raises(ConfigError, match="capacity"):
        replay.init(0, 0, WEIGHT)


# -- sum tree ----------------------------------------------------------------------------------


def test_tree_layout_pads_to_power_of_two() -> None:
    tree = replay.tree_init(5, size=3, priority=2.0)
    assert replay.num_leaves(tree) == 8
    assert tree.nodes.shape == (16,) and tree.nodes.dtype == jnp.float32
    np.testing.assert_array_equal(replay.tree_leaves(tree), [2, 2, 2, 0, 0, 0, 0, 0])
    assert float(replay.tree_total(tree)) == 6.0
    assert_consistent(tree)
    one = replay.tree_init(1, size=1)
    idx, prob = tree_sample(one, jax.random.key(0), 4)
    np.testing.assert_array_equal(idx, 0)
    np.testing.assert_array_equal(prob, 1.0)


PRIORITIES = np.array([0.0, 1.0, 2.0, 0.0, 5.0, 0.5, 3.0, 0.0, 8.0, 1.5, 0.25, 4.0] * 4, np.float32)  # 48


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(np.asarray(idx).reshape(-1), minlength=n)


@pytest.mark.parametrize("batch_size", [1, 100])
def test_sampling_frequencies_match_priorities(batch_size: int) -> None:
    """batch 1 vmapped over keys is i.i.d. sampling; batch 100 checks the stratified marginals."""
    tree = tree_with(list(PRIORITIES))  # 48 leaves, padded to 64 with zeros
    n_draws = 100_000
    keys = jax.random.split(jax.random.key(1234), n_draws // batch_size)
    idx, prob = jax.jit(jax.vmap(lambda k: replay.tree_sample(tree, k, batch_size)))(keys)
    counts = _counts(idx, 64)
    positive = PRIORITIES > 0
    assert counts[:48][~positive].sum() == 0 and counts[48:].sum() == 0
    expected = PRIORITIES[positive] / PRIORITIES.sum() * n_draws
    assert sps.chisquare(counts[:48][positive], expected).pvalue > 1e-3
    np.testing.assert_allclose(prob, PRIORITIES[np.asarray(idx)] / PRIORITIES.sum(), rtol=1e-6)


def test_zero_priority_leaves_never_sampled_after_many_float32_updates() -> None:
    rng = np.random.default_rng(0)
    capacity, batch = 64, 32
    tree = replay.tree_init(capacity, size=capacity)
    truth = np.ones(capacity, np.float32)
    for _ in range(300):  # priorities over 12 orders of magnitude, a third exactly 0
        idx = rng.integers(0, capacity, batch)
        vals = (10.0 ** rng.uniform(-6, 6, batch)).astype(np.float32)
        vals[rng.random(batch) < 0.33] = 0.0
        tree = tree_set(tree, jnp.asarray(idx, jnp.int32), jnp.asarray(vals))
        truth[idx] = vals  # numpy fancy assignment: last write wins
    np.testing.assert_array_equal(replay.tree_leaves(tree)[:capacity], truth)
    assert (truth == 0).sum() > 5
    keys = jax.random.split(jax.random.key(7), 500)
    idx, _ = jax.jit(jax.vmap(lambda k: replay.tree_sample(tree, k, 256)))(keys)
    assert (truth[np.asarray(idx)] > 0).all()


def test_descent_guard_survives_an_inconsistent_tree() -> None:
    """u beyond the children's mass (what float round-off can cause) still never lands on a zero leaf."""
    tree = tree_with([0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0])
    inflated = replay.SumTree(tree.nodes.at[1].set(100.0).at[2].set(50.0))  # root and a child too big
    idx, _ = tree_sample(inflated, jax.random.key(0), 512)
    assert set(np.unique(np.asarray(idx))) <= {1, 3, 6}
    huge_and_tiny = tree_with([1e30, 0.0, 1e-30, 0.0])
    idx, _ = tree_sample(huge_and_tiny, jax.random.key(1), 1024)
    assert set(np.unique(np.asarray(idx))) <= {0, 2}


def test_no_drift_and_rebuild_restores_consistency() -> None:
    rng = np.random.default_rng(1)
    capacity = 1000
    tree = replay.tree_init(capacity, size=capacity)
    for _ in range(100):  # 25,600 single-leaf writes
        idx = jnp.asarray(rng.integers(0, capacity, 256), jnp.int32)
        tree = tree_set(tree, idx, jnp.asarray(rng.exponential(10.0, 256), jnp.float32))
    assert_consistent(tree)
    leaves64 = np.asarray(replay.tree_leaves(tree), np.float64)
    assert abs(float(replay.tree_total(tree)) - leaves64.sum()) <= 1e-5 * leaves64.sum()
    np.testing.assert_array_equal(replay.tree_rebuild(tree).nodes, tree.nodes)  # nothing to repair

    corrupted = replay.SumTree(tree.nodes.at[1].add(3.0).at[5].mul(1.001).at[700].set(0.0))
    fixed = replay.tree_rebuild(corrupted)
    assert_consistent(fixed)
    np.testing.assert_array_equal(replay.tree_leaves(fixed), replay.tree_leaves(corrupted))


def test_duplicate_indices_last_write_wins_and_tree_stays_consistent() -> None:
    tree = replay.tree_init(8, size=8)
    idx = jnp.asarray([3, 3, 5, 3, 5, 0], jnp.int32)
    tree = tree_set(tree, idx, jnp.asarray([10.0, 20.0, 30.0, 40.0, 0.0, 7.0]))
    np.testing.assert_array_equal(replay.tree_leaves(tree), [7, 1, 1, 40, 1, 0, 1, 1])
    assert_consistent(tree)
    assert float(replay.tree_total(tree)) == 52.0


@pytest.mark.parametrize("in_axes", [(0, 0, 0), (0, None, None), (None, 0, 0), (0, 0, None)])
def test_tree_set_batching_rule_matches_per_tree_loop(in_axes: tuple[int | None, ...]) -> None:
    """tree_set's custom vmap rule (trees laid back to back) against one call per tree."""
    rng = np.random.default_rng(5)
    trees = replay.SumTree(jnp.stack([replay.tree_init(11, 11).nodes, replay.tree_init(11, 7, 2.0).nodes] * 2))
    idx = jnp.asarray(rng.integers(0, 11, (4, 9)), jnp.int32).at[:, 3].set(5).at[:, 6].set(5)  # duplicates
    vals = jnp.asarray(rng.exponential(3.0, (4, 9)), jnp.float32)
    args = [(trees.nodes, 0), (idx, 1), (vals, 2)]
    batched = [x if axis == 0 else x[0] for (x, _), axis in zip(args, in_axes, strict=True)]
    got = jax.jit(jax.vmap(lambda n, i, v: replay.tree_set(replay.SumTree(n), i, v).nodes, in_axes=in_axes))(*batched)
    for k in range(4):
        one = [x[k] if axis == 0 else x for x, axis in zip(batched, in_axes, strict=True)]
        np.testing.assert_array_equal(got[k], tree_set(replay.SumTree(one[0]), one[1], one[2]).nodes)
        assert_consistent(replay.SumTree(got[k]))
    nested = jax.vmap(jax.vmap(lambda n, i, v: replay.tree_set(replay.SumTree(n), i, v).nodes))(
        trees.nodes.reshape(2, 2, -1), idx.reshape(2, 2, -1), vals.reshape(2, 2, -1)
    )
    if in_axes == (0, 0, 0):
        np.testing.assert_array_equal(nested.reshape(got.shape), got)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 12), min_size=8, max_size=8),
            st.lists(
                st.one_of(st.just(0.0), st.floats(1e-6, 1e6).map(lambda x: float(np.float32(x)))),
                min_size=8,
                max_size=8,
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_property_tree_matches_last_write_wins_reference(ops: list[tuple[list[int], list[float]]]) -> None:
    tree = replay.tree_init(13, size=13)
    truth = np.zeros(16, np.float32)
    truth[:13] = 1.0
    for idx, vals in ops:
        tree = tree_set(tree, jnp.asarray(idx, jnp.int32), jnp.asarray(vals, jnp.float32))
        for i, v in zip(idx, vals, strict=True):
            truth[i] = v
    np.testing.assert_array_equal(replay.tree_leaves(tree), truth)
    assert_consistent(tree)
    np.testing.assert_array_equal(tree.nodes, replay.tree_from_leaves(jnp.asarray(truth)).nodes)


# -- the two mechanisms ------------------------------------------------------------------------


RAW = jnp.asarray([0.5, 3.0, 10.0, 60.0], jnp.float32)  # clips to [1, 3, 10, 50]


def _weight_state(cfg: replay.ReplayConfig) -> replay.ReplayState:
    state = replay.init(6, 6, cfg)
    return state._replace(weights=jnp.asarray([1.0, 2.0, 0.5, 1.0, 7.0, 9.0], jnp.float32))


def test_weight_mode_avg_matches_roer_formula_by_hand() -> None:
    cfg = replay.ReplayConfig(mode="weight", scheme="avg", ema=0.1, min_clip=0.6)
    state = replay.update(_weight_state(cfg), jnp.arange(4), RAW, cfg)
    # e = [1, 3, 10, 50]; mean(w·e) = (1 + 6 + 5 + 50)/4 = 15.5, so e/15.5 = [2, 6, 20, 100]/31;
    # w ← (0.1·e + 0.9)·w = [28.1/31, 2·28.5/31, 0.5·29.9/31 → floor 0.6, 37.9/31]
    expected = [28.1 / 31, 57 / 31, 0.6, 37.9 / 31, 7.0, 9.0]
    np.testing.assert_allclose(state.weights, expected, rtol=1e-6)
    np.testing.assert_allclose(expected[:4], [0.9064516, 1.8387097, 0.6, 1.2225806], rtol=1e-6)


def test_weight_mode_exp_matches_roer_formula_by_hand() -> None:
    cfg = replay.ReplayConfig(mode="weight", scheme="exp", alpha=0.5, min_clip=0.5)
    state = replay.update(_weight_state(cfg), jnp.arange(4), RAW, cfg)
    # c = sqrt([1, 3, 10, 50]) = [1, 1.7320508, 3.1622777, 7.0710678], mean 3.2413491
    expected = [0.5, 0.5343611, 0.9756054, 2.1815200, 7.0, 9.0]  # 0.3085135 floored at 0.5
    np.testing.assert_allclose(state.weights, expected, rtol=1e-6)


def test_weight_mode_default_lower_clip_only_upweights() -> None:
    state = replay.init(4, 4, WEIGHT)
    state = replay.update(state, jnp.arange(4), jnp.asarray([0.0, 0.2, 1.0, 0.9]), WEIGHT)
    np.testing.assert_allclose(state.weights, 1.0, rtol=1e-6)  # all clip to 1 → e = 1 → unchanged


def test_weight_mode_duplicates_store_the_last_occurrence() -> None:
    cfg = replay.ReplayConfig(mode="weight", scheme="exp", alpha=1.0, min_clip=0.0)
    state = replay.init(4, 4, cfg)
    state = replay.update(state, jnp.asarray([2, 0, 2, 2]), jnp.asarray([1.0, 2.0, 4.0, 3.0]), cfg)
    np.testing.assert_allclose(state.weights, [2 / 2.5, 1.0, 3 / 2.5, 1.0], rtol=1e-6)  # mean c = 2.5


def test_weight_mode_sample_is_uniform_over_valid_items_with_stored_weights() -> None:
    state = _weight_state(WEIGHT)
    state = replay.set_size(state._replace(size=jnp.asarray(0, jnp.int32)), 5, WEIGHT)
    state = state._replace(weights=jnp.asarray([1.0, 2.0, 0.5, 1.0, 7.0, 9.0], jnp.float32))
    idx, loss_w = jax.jit(replay.sample, static_argnums=(2, 3))(state, jax.random.key(3), 5000, WEIGHT)
    idx = np.asarray(idx)
    assert idx.min() == 0 and idx.max() == 4
    np.testing.assert_array_equal(loss_w, np.asarray(state.weights)[idx])
    assert sps.chisquare(_counts(idx, 5)).pvalue > 1e-3


def test_sample_mode_importance_weights_by_hand() -> None:
    cfg = replay.ReplayConfig(mode="sample", importance_exponent=0.5)
    state = replay.update(replay.init(4, 4, cfg), jnp.arange(4), jnp.asarray([1.0, 2.0, 3.0, 4.0]), cfg)
    idx, loss_w = replay.sample(state, jax.random.key(0), 64, cfg)
    # P = [.1, .2, .3, .4], N = 4: (N·P)^(-1/2) / max = sqrt(P_0 / P_i) = 1/sqrt(i + 1); with 64 strata
    # every item is drawn, so the batch max is item 0's.
    idx = np.asarray(idx)
    assert set(idx) == {0, 1, 2, 3}
    np.testing.assert_allclose(loss_w, np.array([1.0, 0.70710678, 0.57735027, 0.5])[idx], rtol=1e-6)
    assert float(state.max_priority) == 4.0


def test_sample_mode_floor_max_priority_and_add() -> None:
    cfg = replay.ReplayConfig(mode="sample", lower_clip=0.0, max_clip=10.0)
    state = replay.init(8, 2, cfg)
    state = replay.update(state, jnp.asarray([0, 1]), jnp.asarray([0.0, 25.0]), cfg)
    np.testing.assert_allclose(replay.tree_leaves(state.tree)[:3], [replay.PRIORITY_FLOOR, 10.0, 0.0])
    assert float(state.max_priority) == 10.0
    state = replay.add(state, jnp.asarray([2, 3]), cfg)  # new items at the max priority
    assert int(state.size) == 4
    np.testing.assert_allclose(replay.tree_leaves(state.tree)[:5], [1e-6, 10, 10, 10, 0])
    assert_consistent(state.tree)
    idx, _ = replay.sample(state, jax.random.key(0), 256, cfg)
    assert np.asarray(idx).max() <= 3 and 0 not in set(np.asarray(idx))  # 1e-6 of 30: not in 256 draws


def test_add_and_set_size_grow_and_cap() -> None:
    for cfg in (WEIGHT, SAMPLE, UNIFORM):
        state = replay.init(6, 0, cfg)
        assert int(state.size) == 0
        state = replay.add(state, jnp.asarray([0, 1, 2]), cfg)
        assert int(state.size) == 3
        state = replay.add(state, jnp.asarray([4, 5, 0]), cfg)  # a ring buffer wrapping around
        assert int(state.size) == 6
        assert int(replay.set_size(state, 100, cfg).size) == 6
        assert int(replay.init(6, 100, cfg).size) == 6

    state = replay.init(6, 2, SAMPLE)
    state = replay.update(state, jnp.asarray([0, 1]), jnp.asarray([4.0, 2.0]), SAMPLE)
    grown = replay.set_size(state, 4, SAMPLE)
    np.testing.assert_array_equal(replay.tree_leaves(grown.tree), [4, 2, 4, 4, 0, 0, 0, 0])
    shrunk = replay.set_size(grown, 1, SAMPLE)
    np.testing.assert_array_equal(replay.tree_leaves(shrunk.tree), [4, 0, 0, 0, 0, 0, 0, 0])
    assert_consistent(shrunk.tree)

    state = replay.init(4, 2, WEIGHT)._replace(weights=jnp.asarray([3.0, 3.0, 3.0, 3.0]))
    np.testing.assert_array_equal(replay.set_size(state, 3, WEIGHT).weights, [3, 3, 1, 3])


def test_uniform_replay_keeps_weights_at_one() -> None:
    state = replay.init(10, 7, UNIFORM)
    assert state.weights is None and state.tree is None
    idx, loss_w = replay.sample(state, jax.random.key(0), 300, UNIFORM)
    assert int(np.min(idx)) >= 0 and int(np.max(idx)) < 7
    np.testing.assert_array_equal(loss_w, 1.0)
    assert replay.update(state, idx[:4], jnp.asarray([5.0, 0.0, 50.0, 2.0]), UNIFORM) is state
    assert {k: float(v) for k, v in replay.stats(state, UNIFORM).items()} == {
        "weight_mean": 1.0,
        "weight_max": 1.0,
        "weight_min": 1.0,
        "ess_frac": 1.0,
        "floor_frac": 0.0,
        "cap_frac": 0.0,
    }


def test_stats_over_valid_items() -> None:
    state = replay.init(6, 4, WEIGHT)._replace(weights=jnp.asarray([1.0, 2.0, 3.0, 4.0, 99.0, 99.0]))
    s = {k: float(v) for k, v in jax.jit(replay.stats, static_argnums=1)(state, WEIGHT).items()}
    # ESS/N = (Σw)² / (N·Σw²) = 100 / (4·30); WEIGHT's floor min_clip = 1 holds one of four items
    expected = {"weight_mean": 2.5, "weight_max": 4.0, "weight_min": 1.0, "ess_frac": 100 / 120}
    assert s == pytest.approx({**expected, "floor_frac": 0.25, "cap_frac": 0.0})
    tree_state = replay.update(replay.init(6, 4, SAMPLE), jnp.arange(4), jnp.asarray([1.0, 2.0, 3.0, 50.0]), SAMPLE)
    # priorities are clipped to [lower_clip, max_clip] = [1, 50]: one item at each end
    t = {k: float(v) for k, v in replay.stats(tree_state, SAMPLE).items()}
    assert t["floor_frac"] == 0.25 and t["cap_frac"] == 0.25 and t["weight_max"] == 50.0
    empty = replay.stats(replay.init(6, 0, SAMPLE), SAMPLE)
    assert all(float(v) == 0.0 for v in empty.values())


def test_nan_priorities_do_not_poison_the_tree() -> None:
    state = replay.update(replay.init(4, 4, SAMPLE), jnp.arange(4), jnp.asarray([jnp.nan, 2.0, 3.0, 4.0]), SAMPLE)
    assert np.isfinite(np.asarray(state.tree.nodes)).all()
    assert float(replay.tree_leaves(state.tree)[0]) == SAMPLE.lower_clip


# -- jit, scan, vmap ---------------------------------------------------------------------------


def _train(state: replay.ReplayState, key: jax.Array, cfg: replay.ReplayConfig, steps: int = 20):
    """A learner-shaped loop: priorities are a deterministic function of the sampled indices."""

    def step(state: replay.ReplayState, key: jax.Array):
        idx, loss_w = replay.sample(state, key, 16, cfg)
        raw = 0.5 + (idx % 7).astype(jnp.float32) * 3.0
        state = replay.update(state, idx, raw, cfg)
        return state, (idx, loss_w)

    state, trace = jax.lax.scan(step, state, jax.random.split(key, steps))
    return replay.rebuild(state, cfg), trace


@pytest.mark.parametrize(
    "cfg", [WEIGHT, replay.ReplayConfig(scheme="exp"), SAMPLE, UNIFORM], ids=["avg", "exp", "sample", "uniform"]
)
def test_vmap_over_seeds_equals_separate_runs(cfg: replay.ReplayConfig) -> None:
    keys = jax.random.split(jax.random.key(42), 2)
    train = jax.jit(partial(_train, cfg=cfg))
    states = jax.vmap(lambda k: replay.init(40, 33, cfg))(keys)  # as the learner builds it
    assert states.size.shape == (2,)
    batched_state, batched_trace = jax.jit(jax.vmap(partial(_train, cfg=cfg)))(states, keys)
    assert int(np.asarray(batched_trace[0]).max()) < 33
    for seed in range(2):
        single_state, single_trace = train(replay.init(40, 33, cfg), keys[seed])
        for got, want in zip(
            jax.tree_util.tree_leaves((batched_state, batched_trace)),
            jax.tree_util.tree_leaves((single_state, single_trace)),
            strict=True,
        ):
            np.testing.assert_allclose(got[seed], want, rtol=1e-6)
    if cfg.prioritized:
        assert not np.allclose(batched_trace[1][0], batched_trace[1][1])  # the seeds really differ
        if cfg.mode == "sample":
            assert_consistent(replay.SumTree(batched_state.tree.nodes[1]))
    assert replay.replicate(replay.init(40, 33, cfg), 2).size.shape == (2,)


@pytest.mark.parametrize("seeds", [0, 2], ids=["single", "vmapped"])
@pytest.mark.parametrize("cfg", [WEIGHT, replay.ReplayConfig(scheme="exp"), SAMPLE], ids=["avg", "exp", "sample"])
def test_scanned_step_updates_priorities_in_place(cfg: replay.ReplayConfig, seeds: int) -> None:
    """The learner's fresh priorities do not depend on the loss weights; XLA must still write the
    O(N) array in place: no whole-array copy in the program (the input is donated)."""
    capacity = 3001

    def run(state: replay.ReplayState, key: jax.Array):
        def step(state, key):
            k1, k2 = jax.random.split(key)
            idx, loss_w = replay.sample(state, k1, 64, cfg)
            raw = 1.0 + 10.0 * jax.random.uniform(k2, (64,))
            return replay.update(state, idx, raw, cfg), jnp.mean(loss_w) + jnp.mean(idx)

        return jax.lax.scan(step, state, jax.random.split(key, 10))

    state, key = replay.init(capacity, capacity, cfg), jax.random.key(0)
    if seeds:
        state, key, run = replay.replicate(state, seeds), jax.random.split(key, seeds), jax.vmap(run)
    hlo = jax.jit(run, donate_argnums=0).lower(state, key).compile().as_text()
    width = 4096 * 2 if cfg.mode == "sample" else capacity
    dims = f"{seeds},{width}" if seeds else f"{width}"
    assert re.search(rf"f32\[{dims}\]\{{[0-9,]+\}} parameter\(", hlo)  # the pattern matches this HLO
    assert not re.search(rf"f32\[{dims}\]\{{[0-9,]+\}} copy\(", hlo)
