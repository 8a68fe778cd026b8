"""The offline learner: every per_type trains finitely, seeds vmap exactly, and it learns."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdivrl import config as C
from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError
from fdivrl.learning.learner import Batch, Learner, LearnerConfig

SMALL = LearnerConfig(hidden=(32, 32), batch_size=64, total_steps=1000)


def random_data(n: int = 512, obs_dim: int = 5, act_dim: int = 2, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        observations=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-1, 1, (n, act_dim)), jnp.float32),
        rewards=jnp.asarray(rng.normal(size=n), jnp.float32),
        next_observations=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        masks=jnp.asarray(rng.integers(0, 2, n), jnp.float32),
    )


def make(per_type: str, mode: str = "weight", cfg: LearnerConfig = SMALL, obs_dim=5, act_dim=2, **div_kw) -> Learner:
    # through the config, which derives the replay's clips from the divergence's as a run does
    run = C.with_overrides(C.TrainConfig(per_type=per_type), divergence=div_kw, replay={"mode": mode})
    return Learner(D.get(per_type), run.divergence, run.replay, cfg, obs_dim=obs_dim, act_dim=act_dim)


def leaves_differ(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# One learner program per kind of per_type (an FDivergence with and without a pole, a bounded one, the
# seed's JS, the baselines) and per mechanism: chi2, neyman, hellinger and reverse-KL run JS-exact's
# code path, and test_divergences checks their weights, losses and gradients finite at extreme z.
@pytest.mark.parametrize(
    ("per_type", "mode"),
    [(name, "weight") for name in ("uniform", "PER", "KL", "JS", "JS-exact", "sigmoid")]
    + [("KL", "sample"), ("JS", "sample")],
)
def test_steps_change_every_network_and_stay_finite(per_type, mode):
    data = random_data()
    learner = make(per_type, mode)
    state = learner.init_seeds([0], 512)
    before = jax.device_get(state)
    state, metrics = learner.compiled_update(20)(state, data)
    after = jax.device_get(state)
    for name in ("actor", "critic", "value"):
        assert leaves_differ(getattr(before, name).params, getattr(after, name).params), name
    assert leaves_differ(before.target_critic, after.target_critic)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in metrics.values())
    assert all(
        np.all(np.isfinite(x)) for x in jax.tree.leaves(after) if np.issubdtype(np.asarray(x).dtype, np.floating)
    )
    assert int(after.step[0]) == 20
    stats = learner.replay_stats(state)
    if D.get(per_type).prioritized:
        # priorities moved away from their initial value of 1 for the sampled items
        assert float(stats["weight_max"][0]) != 1.0 or float(stats["weight_min"][0]) != 1.0
    else:
        assert float(stats["weight_max"][0]) == float(stats["weight_min"][0]) == 1.0


def test_vmapped_seeds_equal_separately_run_seeds():
    data = random_data()
    learner = make("KL")
    program = learner.compiled_update(10)
    together, m_together = program(learner.init_seeds([3, 4], 512), data)
    for i, seed in enumerate((3, 4)):
        alone, m_alone = program(learner.init_seeds([seed], 512), data)
        for x, y in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(np.asarray(x)[i], np.asarray(y)[0], rtol=2e-5, atol=1e-6)
        for k in m_together:
            assert float(m_together[k][i]) == pytest.approx(float(m_alone[k][0]), rel=1e-4, abs=1e-6)


def test_same_seed_same_numbers():
    data = random_data()
    learner = make("JS-exact", "sample")
    a, _ = learner.compiled_update(15)(learner.init_seeds([7], 512), data)
    b, _ = learner.compiled_update(15)(learner.init_seeds([7], 512), data)
    assert not leaves_differ(jax.device_get(a), jax.device_get(b))


def bandit_data(n: int = 4096, seed: int = 0) -> tuple[Batch, np.ndarray]:
    """One-step episodes: the reward is −‖a − a*‖² with a* fixed, actions uniform. The behaviour
    policy's mean action is 0, far from a*; advantage-weighted extraction must move toward a*."""
    rng = np.random.default_rng(seed)
    best = np.array([0.6, -0.5], np.float32)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    rew = -np.sum((act - best) ** 2, axis=1).astype(np.float32)
    batch = Batch(
        observations=jnp.asarray(obs),
        actions=jnp.asarray(act),
        rewards=jnp.asarray(rew),
        next_observations=jnp.asarray(obs),
        masks=jnp.zeros(n, jnp.float32),
    )
    return batch, best


@pytest.mark.parametrize("per_type", ["KL", "JS-exact"])
def test_policy_learns_the_obvious_best_action(per_type):
    data, best = bandit_data()
    cfg = LearnerConfig(hidden=(64, 64), batch_size=256, total_steps=3000, awr_temperature=3.0)
    learner = make(per_type, cfg=cfg, obs_dim=3, act_dim=2, beta=1.0)
    state = learner.init_seeds([0], data.rewards.shape[0])
    program = learner.compiled_update(1000)
    obs = data.observations[:512]

    def distance(state) -> float:
        params = jax.tree.map(lambda x: x[0], state.actor.params)
        return float(jnp.mean(jnp.linalg.norm(learner.act(params, obs) - best, axis=-1)))

    start = distance(state)
    for _ in range(3):
        state, metrics = program(state, data)
    end = distance(state)
    behaviour = float(np.mean(np.linalg.norm(np.asarray(data.actions) - best, axis=-1)))
    assert start > 0.6 and behaviour > 0.6
    assert end < 0.25, (start, end)
    # V tracks the multiplier of in-sample Q: below the best Q, above the mean (soft maximum)
    assert float(np.mean(np.asarray(data.rewards))) < float(metrics["v_mean"][0]) < 0.0


def constant_data(reward: float, mask: float, n: int = 256) -> Batch:
    data = random_data(n)
    return data._replace(rewards=jnp.full(n, reward, jnp.float32), masks=jnp.full(n, mask, jnp.float32))


def test_clip_targets_cuts_every_target_outside_the_return_range_and_none_inside():
    kl = make("KL")
    clipped = dataclasses.replace(kl, cfg=dataclasses.replace(SMALL, clip_targets=True), target_bounds=(-1.0, 0.5))

    def state():  # a compiled update consumes the state it is given
        return clipped.init_seeds([0], 256)

    # r = 5 with bootstrapping: 5 + 0.99·V(s') lies above 0.5 for any V near its initial ~0
    _, above = clipped.compiled_update(1)(state(), constant_data(5.0, 1.0))
    assert float(above["target_clip_frac"][0]) == 1.0 and float(above["target_mean"][0]) == 0.5
    assert float(above["target_raw_mean"][0]) > 4.0  # what the targets were before the clip
    # terminal transitions with r = 0: every target is the reward, inside the range
    _, inside = clipped.compiled_update(1)(state(), constant_data(0.0, 0.0))
    assert float(inside["target_clip_frac"][0]) == 0.0 and float(inside["target_mean"][0]) == 0.0
    # and below it: terminal transitions with r = −5 are lifted to the lower bound
    _, below = clipped.compiled_update(1)(state(), constant_data(-5.0, 0.0))
    assert float(below["target_clip_frac"][0]) == 1.0 and float(below["target_mean"][0]) == -1.0
    # without the option the same step keeps its targets (and reports no clip fraction)
    _, free = kl.compiled_update(1)(state(), constant_data(5.0, 1.0))
    assert "target_clip_frac" not in free and float(free["target_mean"][0]) > 4.0


def test_clip_targets_needs_the_return_range():
    with pytest.raises(ConfigError, match="clip_targets needs the return range"):
        make("KL", cfg=dataclasses.replace(SMALL, clip_targets=True))
