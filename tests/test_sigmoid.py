"""`sigmoid`: the seed's bounded σ-shaped priorities with the f-divergence they are exactly optimal for."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fdivrl.core import divergences as D
from fdivrl.core import report as R
from fdivrl.core.primal import solve_primal

CFG = D.DivergenceConfig(beta=1.0)


def test_weight_is_two_sigmoid_bounded_in_zero_two_and_never_capped():
    z = jnp.linspace(-50.0, 50.0, 1001)
    w = np.asarray(D.SIGMOID.weight(z, CFG))
    np.testing.assert_allclose(w, 2.0 / (1.0 + np.exp(-np.asarray(z, np.float64))), atol=1e-6)
    assert w.min() >= 0.0 and w.max() <= 2.0 and np.all(np.diff(w) >= -1e-6)  # float32 tanh: ulp steps
    assert math.isinf(D.SIGMOID.z_at(CFG.max_clip)) and math.isinf(D.SIGMOID.z_at(math.exp(CFG.gumbel_max_clip)))
    assert D.SIGMOID.lower_clip(CFG) == 0.0


def test_loss_and_gradient_are_the_exact_dual_and_finite_over_a_wide_range():
    z = jnp.linspace(-50.0, 50.0, 2001)
    loss = np.asarray(D.SIGMOID.loss(z, CFG))
    zn = np.asarray(z, np.float64)
    np.testing.assert_allclose(loss, 2 * np.logaddexp(0, zn) - zn - 2 * math.log(2), rtol=1e-5, atol=1e-4)
    grad = np.asarray(jax.vmap(jax.grad(lambda x: D.SIGMOID.loss(x, CFG)))(z))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, 2.0 / (1.0 + np.exp(-zn)) - 1.0, atol=1e-5)  # dℓ/dz = w*(z) − 1


def test_closed_form_matches_the_solver_and_the_dual_minimizer_is_the_multiplier():
    rng = np.random.default_rng(7)
    for _ in range(2):
        a, p, beta = R.random_instance(rng, 40)
        w = D.optimal_ratio("sigmoid", a, beta, p)
        assert np.max(np.abs(solve_primal(D.SIGMOID, a, beta, p).w - w)) <= 1e-6
        lam = D.multiplier(D.SIGMOID, a, beta, p)
        assert R.dual_multiplier(D.SIGMOID, a, beta, p) == pytest.approx(lam, abs=1e-6)
        assert float(p @ (2.0 / (1.0 + np.exp(-(a - lam) / beta)))) == pytest.approx(1.0, abs=1e-12)


def _train_scalar_v(div: D.Divergence, q: jax.Array, steps: int = 3000) -> np.ndarray:
    """Adam on a scalar V with the per_type's value loss over fixed in-sample Q values (a bandit)."""
    opt = optax.adam(0.05)

    def step(carry, _):
        v, s = carry
        g = jax.grad(lambda v: div.value_loss(q, v, CFG))(v)
        updates, s = opt.update(g, s)
        v = optax.apply_updates(v, updates)
        return (v, s), v

    v0 = jnp.float32(0.0)
    _, path = jax.lax.scan(step, (v0, opt.init(v0)), None, length=steps)
    return np.asarray(path)


def test_v_settles_at_the_multiplier_where_the_seeds_js_drifts_up():
    q = jnp.asarray(np.random.default_rng(0).normal(size=512), jnp.float32)
    lam = D.multiplier(D.SIGMOID, np.asarray(q, np.float64), CFG.beta)
    sig = _train_scalar_v(D.SIGMOID, q)
    assert sig[-1] == pytest.approx(lam, abs=0.02)
    assert abs(sig[-1] - sig[-1000]) < 0.02  # settled
    js = _train_scalar_v(D.JS, q)
    # the seed's loss pushes V up until every (Q − V)/β is clipped at −gumbel_max_clip: far above max Q
    assert js[-1] > float(q.max()) + 2.0 and js[-1] > js[-1000]
