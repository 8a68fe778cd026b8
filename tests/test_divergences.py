"""The math of every per_type: closed forms against a numerical solver, the dual property,
the seed's JS exactly as specified, and finiteness where training can take z."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdivrl.core import divergences as D
from fdivrl.core.primal import objective, solve_primal
from fdivrl.core.report import dual_multiplier, random_instance, seed_comparison
from fdivrl.errors import ConfigError, UnknownPerType

CLOSED = [d for d in D.REGISTRY.values() if isinstance(d, D.FDivergence)]
CLOSED_IDS = [d.name for d in CLOSED]
ALL = list(D.REGISTRY.values())
ALL_IDS = [d.name for d in ALL]
CFG = D.DivergenceConfig()


@pytest.mark.parametrize("div", CLOSED, ids=CLOSED_IDS)
def test_closed_form_matches_numerical_primal_solver(div):
    rng = np.random.default_rng(123)
    for _ in range(6):
        a, p, beta = random_instance(rng, 25)
        w = D.optimal_ratio(div.name, a, beta, p)
        sol = solve_primal(div, a, beta, p)
        assert np.max(np.abs(sol.w - w)) <= 1e-4
        assert abs(sol.objective - objective(div, w, a, beta, p)) <= 1e-6
        assert p @ w == pytest.approx(1.0, abs=1e-12)
        assert np.all(w >= 0)


@pytest.mark.parametrize("div", CLOSED, ids=CLOSED_IDS)
def test_closed_form_beats_perturbed_feasible_ratios(div):
    """No feasible nearby w does better: the closed form is the maximizer, not just a critical point."""
    rng = np.random.default_rng(7)
    a, p, beta = random_instance(rng, 20)
    w = D.optimal_ratio(div.name, a, beta, p)
    best = objective(div, w, a, beta, p)
    for _ in range(200):
        v = np.maximum(w * np.exp(rng.normal(0, 0.05, w.size)), 1e-9)
        v /= p @ v
        assert objective(div, v, a, beta, p) <= best + 1e-12


def test_reference_multipliers_of_theory_md():
    """docs/theory.md §2's solved instance (n = 40, Dirichlet(1) buffer, A ~ N(0, 1.5²), β = 0.7, seed 1)."""
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1.5, 40)
    p = rng.dirichlet(np.ones(40))
    expected = {"KL": 1.00700, "JS-exact": 2.70571, "chi2": 0.26783, "hellinger": 2.57937}
    for name, lam in expected.items():
        assert D.multiplier(D.get(name), a, 0.7, p) == pytest.approx(lam, abs=5e-6)


def test_seed_js_is_not_the_js_optimum_theory_md_instance():
    """docs/theory.md §3: exact JS top/bottom weights 29.0/0.013, KL 4.20/0.058, and the JS objective
    is higher at the exact optimum than at the seed's (normalized) weights."""
    cmp = seed_comparison(n=50, beta=1.0, seed=0)
    assert cmp.top_bottom["JS-exact"][0] == pytest.approx(29.0, abs=0.05)
    assert cmp.top_bottom["JS-exact"][1] == pytest.approx(0.013, abs=0.001)
    assert cmp.top_bottom["KL"][0] == pytest.approx(4.20, abs=0.01)
    assert cmp.top_bottom["KL"][1] == pytest.approx(0.058, abs=0.001)
    assert cmp.js_objective_optimum == pytest.approx(0.956, abs=1e-3)
    assert cmp.js_objective_seed < cmp.js_objective_optimum - 0.5


@pytest.mark.parametrize("div", CLOSED, ids=CLOSED_IDS)
def test_value_loss_minimizer_over_constant_v_is_the_multiplier(div):
    """The dual property: argmin_V E_b[ℓ((A − V)/β)] = λ, for the float64 dual and the training loss."""
    rng = np.random.default_rng(11)
    for _ in range(3):
        a, p, beta = random_instance(rng, 30)
        lam = D.multiplier(div, a, beta, p)
        assert dual_multiplier(div, a, beta, p) == pytest.approx(lam, abs=1e-6)

        # the float32 loss the learner trains V with: its expected gradient changes sign at λ
        aj, pj = jnp.asarray(a, jnp.float32), jnp.asarray(p, jnp.float32)

        def expected_loss(v, aj=aj, pj=pj, beta=beta):
            return jnp.sum(pj * div.loss((aj - v) / beta, CFG))

        grad = jax.jit(jax.grad(expected_loss))
        scale = beta * 1e-3
        assert float(grad(jnp.float32(lam - scale))) < 0 < float(grad(jnp.float32(lam + scale)))


@pytest.mark.parametrize("div", CLOSED, ids=CLOSED_IDS)
@settings(max_examples=25, deadline=None)
@given(z=st.floats(-6.0, 0.6), beta=st.floats(0.1, 5.0))
def test_value_loss_gradient_in_v_is_one_minus_ratio_over_beta(div, z, beta):
    """dℓ/dV = (1 − w*(z))/β inside the domain: why V converges to the multiplier."""
    q = jnp.float32(1.0)
    v = q - jnp.float32(z * beta)

    def loss(v):
        return div.loss((q - v) / beta, CFG)

    expected = (1.0 - float(div.ratio(np.float64(z), np))) / beta
    assert float(jax.grad(loss)(v)) == pytest.approx(expected, rel=2e-3, abs=2e-3)


@pytest.mark.parametrize("div", CLOSED, ids=CLOSED_IDS)
def test_loss_is_continuous_and_linear_past_its_clip_point(div):
    """The clip point is where w*(z) = e^gumbel_max_clip (z = 7 for KL, below the pole otherwise);
    past it ℓ continues as its tangent line, so gradients stay finite and V never sees a pole.
    A bounded ratio (sigmoid's 2σ) never reaches the clip: its loss is f*(z) − z everywhere."""
    if div.w_sup <= math.exp(CFG.gumbel_max_clip):
        assert math.isinf(div.z_at(math.exp(CFG.gumbel_max_clip)))
        z = np.linspace(-50.0, 50.0, 101)
        exact = div.conj(z, np) - z
        assert np.allclose(np.asarray(div.loss(jnp.asarray(z, jnp.float32), CFG)), exact, rtol=1e-5, atol=1e-4)
        return
    c = np.float32(div.z_at(math.exp(CFG.gumbel_max_clip)))
    assert c < div.z_max
    f = jax.jit(lambda z: div.loss(z, CFG))
    g = jax.jit(jax.grad(lambda z: div.loss(z, CFG)))
    slope = float(div.ratio(np.float64(c), np)) - 1.0
    assert slope == pytest.approx(math.exp(CFG.gumbel_max_clip) - 1, rel=1e-2)  # float32 rounding of c
    eps = 1e-3 if math.isinf(div.z_max) else 0.5 * float(div.z_max - c)
    assert abs(float(f(c)) - float(f(np.float32(c - eps)))) <= 1.01 * eps * slope + 1e-3
    for d in (0.5, 10.0, 100.0):
        assert float(f(np.float32(c + d))) == pytest.approx(float(f(c)) + d * slope, rel=1e-4)
        assert float(g(np.float32(c + d))) == pytest.approx(slope, rel=1e-4)


def test_kl_is_roer_exactly():
    """exp weight capped at max_clip, Gumbel loss e^z − z − 1 linear past z = 7, normalizer mean(max(1, e^z))."""
    z = jnp.asarray([-3.0, 0.0, 2.0, 5.0, 7.0, 9.0], jnp.float32)
    zn = np.asarray(z, np.float64)
    np.testing.assert_allclose(D.KL.weight(z, CFG), np.minimum(np.exp(zn), CFG.max_clip), rtol=1e-6)
    zc = np.minimum(zn, 7.0)
    expected_loss = np.exp(zc) - zc - 1 + (zn - zc) * (np.exp(zc) - 1)
    np.testing.assert_allclose(D.KL.loss(z, CFG), expected_loss, rtol=1e-5)
    assert float(jnp.mean(D.KL.loss_normalizer(z, CFG))) == pytest.approx(np.mean(np.maximum(1, np.exp(zc))), rel=1e-6)
    np.testing.assert_allclose(D.KL.policy_weight(z, CFG), np.minimum(np.exp(zn), 100.0), rtol=1e-6)
    assert D.KL.lower_clip(CFG) == 1.0
    # ROER's lower clip 1 for every weight unbounded above; the bounded sigmoid keeps 0
    assert {d.name: d.lower_clip(CFG) for d in CLOSED} == {
        d.name: (0.0 if d.name == "sigmoid" else 1.0) for d in CLOSED
    }


def _seed_priority(td_error, temp, max_clip=50.0, js_min=0.5, js_max=2.0):
    """The seed's §8 priority code, transcribed to numpy."""
    a = np.clip(td_error / temp, -max_clip, max_clip)
    return js_min + 1.0 / (1.0 + np.exp(-a)) * (js_max - js_min)


def _seed_loss(diff, alpha, gumbel_max_clip=7.0):
    """The seed's §8 `js_divergence_loss`, transcribed to numpy (per-sample loss / batch norm)."""
    z = np.clip(diff / alpha, -gumbel_max_clip, gumbel_max_clip)
    loss = np.log1p(np.exp(z)) - np.log(2.0)
    norm = np.mean(np.maximum(0.5, 1.0 / (1.0 + np.exp(-z))))
    return loss / norm


def test_js_reproduces_the_seeds_formulas_exactly():
    td = np.linspace(-12.0, 12.0, 97)
    for temp in (0.4, 1.0, 3.0):
        z = jnp.asarray(td / temp, jnp.float32)
        np.testing.assert_allclose(D.JS.weight(z, CFG), _seed_priority(td, temp), rtol=1e-6, atol=1e-7)
        q, v = jnp.asarray(td, jnp.float32), jnp.zeros_like(jnp.asarray(td, jnp.float32))
        cfg = D.DivergenceConfig(beta=temp)
        assert float(D.JS.value_loss(q, v, cfg)) == pytest.approx(np.mean(_seed_loss(td, temp)), rel=1e-5)
    assert D.JS.lower_clip(CFG) == CFG.js_min_weight


def test_seed_js_value_loss_has_no_minimizer_its_derivative_in_v_is_negative_everywhere():
    """docs/theory.md §3: d/dV [softplus((Q − V)/β) − log 2] = −σ(z)/β < 0, so V only rises until every
    sample is clipped; the loss is flat (zero gradient) there, never at an interior minimum."""
    beta, c = 0.7, CFG.gumbel_max_clip
    cfg = D.DivergenceConfig(beta=beta)
    q = jnp.asarray(np.random.default_rng(0).normal(0, 2, 64), jnp.float32)
    per_sample_grad = jax.jit(jax.vmap(jax.grad(lambda v, qi: D.JS.loss((qi - v) / beta, cfg)), in_axes=(None, 0)))
    for v in np.linspace(float(q.min()) - beta * c + 0.05, float(q.max()) + beta * c - 0.05, 41):
        g = np.asarray(per_sample_grad(jnp.float32(v), q))
        inside = np.abs((np.asarray(q) - np.float32(v)) / np.float32(beta)) < c
        assert np.all(g[inside] < 0)
        assert np.all(g[~inside] == 0)
        assert float(np.sum(g)) < 0  # the batch loss still decreases: no stationary point here
    # only when every sample is clipped from below (V ≥ max Q + β·c) does the gradient vanish
    v_top = float(q.max()) + beta * c + 0.1
    assert float(jax.grad(lambda v: D.JS.value_loss(q, v, cfg))(jnp.float32(v_top))) == 0.0


@pytest.mark.parametrize("div", ALL, ids=ALL_IDS)
def test_weights_losses_and_gradients_finite_for_extreme_z_under_jit_and_vmap(div):
    z = jnp.linspace(-1e3, 1e3, 4001, dtype=jnp.float32)
    z = jnp.concatenate([z, jnp.asarray([0.0, math.log(2.0), 1.0, -2.0, 7.0], jnp.float32)])
    for fn in (div.weight, div.loss, div.policy_weight):
        val = jax.jit(jax.vmap(lambda x, fn=fn: fn(x, CFG)))(z)
        grad = jax.jit(jax.vmap(jax.grad(lambda x, fn=fn: fn(x, CFG))))(z)
        assert val.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(val))), fn.__name__
        assert bool(jnp.all(jnp.isfinite(grad))), fn.__name__
    assert bool(jnp.all(div.weight(z, CFG) <= CFG.max_clip * (1 + 1e-5)))
    assert bool(jnp.all(div.policy_weight(z, CFG) <= CFG.policy_max_weight * (1 + 1e-5)))
    q = jnp.linspace(-400.0, 400.0, 256, dtype=jnp.float32)
    v_grad = jax.jit(jax.grad(lambda v: div.value_loss(q, v, CFG)))(jnp.zeros_like(q))
    assert bool(jnp.all(jnp.isfinite(v_grad)))


@pytest.mark.parametrize("div", CLOSED, ids=CLOSED_IDS)
def test_weight_is_the_ratio_capped_at_max_clip(div):
    z = np.linspace(-4.0, min(4.0, div.z_max - 1e-3), 200)
    cfg = D.DivergenceConfig(max_clip=20.0)
    expected = np.minimum(div.ratio(z, np), 20.0)
    np.testing.assert_allclose(div.weight(jnp.asarray(z, jnp.float32), cfg), expected, rtol=2e-4, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 40),
    seed=st.integers(0, 10_000),
    beta=st.floats(0.05, 10.0),
    name=st.sampled_from([d.name for d in CLOSED] + ["JS"]),
)
def test_optimal_ratio_is_normalized_and_monotone_in_advantage(n, seed, beta, name):
    rng = np.random.default_rng(seed)
    a, p = rng.normal(0, 2, n), rng.dirichlet(np.ones(n))
    w = D.optimal_ratio(name, a, beta, p)
    assert w.dtype == np.float64
    assert p @ w == pytest.approx(1.0, abs=1e-9)
    order = np.argsort(a)
    assert np.all(np.diff(w[order]) >= -1e-12)


def test_per_weight_is_abs_td_to_alpha_without_a_floor():
    """ROER's PER: |δ_Q|^α of the critic's TD error, no floor (a floor of 10 made it uniform replay)."""
    cfg = D.DivergenceConfig(beta=0.5, per_alpha=0.4, min_clip=10.0)
    z = jnp.asarray([-20.0, -1.0, 0.0, 3.0, 40.0], jnp.float32)
    expected = np.maximum(np.abs(np.asarray(z) * 0.5), 1e-12) ** 0.4
    np.testing.assert_allclose(D.PER.weight(z, cfg), expected, rtol=1e-6)
    assert D.PER.critic_priority and not D.KL.critic_priority
    np.testing.assert_allclose(D.UNIFORM.weight(z, cfg), np.ones(5))
    assert not D.UNIFORM.prioritized and D.PER.prioritized


def test_registry_is_case_insensitive_and_names_the_choices():
    assert D.get("js-EXACT") is D.JS_EXACT
    assert D.get(" kl ") is D.KL
    with pytest.raises(UnknownPerType, match="choose one of: uniform, PER, KL, JS, JS-exact"):
        D.get("wasserstein")
    with pytest.raises(ConfigError, match="baseline"):
        D.optimal_ratio("PER", [0.0, 1.0], 1.0)
    with pytest.raises(ConfigError, match="beta"):
        D.optimal_ratio("KL", [0.0, 1.0], 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.0}, "beta must be > 0"),
        ({"beta": float("nan")}, "beta must be a finite"),
        ({"max_clip": -1.0}, "max_clip must be > 0"),
        ({"js_min_weight": 2.0, "js_max_weight": 1.0}, "js_min_weight"),
        ({"lower_clip": 100.0}, "lower_clip"),
        ({"min_clip": 60.0}, "min_clip"),
        ({"per_alpha": -0.1}, "per_alpha"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        D.DivergenceConfig(**kwargs).validate()


def test_only_the_seed_js_carries_a_caveat():
    """`fdivrl train` prints a per_type's caveat; the seed's JS (no value-loss minimizer) is the one that needs it."""
    assert {d.name for d in D.REGISTRY.values() if d.caveat} == {"JS"}


F_DIVERGENCES = [n for n in D.names() if isinstance(D.get(n), D.FDivergence)]


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_curvature_predicts_how_far_the_multiplier_sits_above_the_mean(name):
    """κ = w*''(0)/w*'(0) is why the presets scale β: over Q spread with small σ around its mean, the
    multiplier λ (numerical root) sits κ·σ²/(2β) above the mean; beta_scale = max(1, κ)."""
    from scipy.stats import norm

    div, beta, sigma = D.get(name), 1.0, 0.05
    q = sigma * norm.ppf((np.arange(20_001) + 0.5) / 20_001)  # deterministic N(0, σ²) quantiles
    shift = D.multiplier(div, q, beta) - q.mean()
    predicted = div.curvature * sigma**2 / (2 * beta)
    assert shift == pytest.approx(predicted, rel=0.05, abs=2e-6), (shift, predicted)
    assert div.beta_scale == max(1.0, div.curvature)
    # at the scaled β the optimism is at most KL's at the task's β
    scaled = D.multiplier(div, q, beta * div.beta_scale) - q.mean()
    assert scaled <= (D.multiplier(D.KL, q, beta) - q.mean()) * 1.05 + 2e-6
    expected = {"KL": 1.0, "JS-exact": 3.0, "sigmoid": 0.0, "chi2": 0.0, "neyman": 1.5, "hellinger": 3.0}
    if name in expected:
        assert div.curvature == expected[name]
