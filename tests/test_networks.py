"""fdivrl.learning.networks.LayerNorm is flax's nn.LayerNorm: same parameters, outputs and gradients."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdivrl.learning.networks import MLP, Actor, Critic, LayerNorm, Value, layer_norm

TOL = dict(rtol=1e-5, atol=1e-5)


def _params(key: jax.Array, n: int) -> dict:
    k_scale, k_bias = jax.random.split(key)
    return {
        "scale": 1.0 + 0.3 * jax.random.normal(k_scale, (n,)),
        "bias": 0.3 * jax.random.normal(k_bias, (n,)),
    }


def _inputs(key: jax.Array, shape: tuple[int, ...], offset: float = 0.5) -> jax.Array:
    """Rows with different offsets and spreads, as the Dense outputs a LayerNorm sees.

    flax computes the variance as E[x²] − E[x]², which in float32 loses ~(mean/std)²·1e-7 relative
    precision; the default offsets keep that under the tolerance (ours subtracts the mean first).
    """
    k_x, k_shift, k_spread = jax.random.split(key, 3)
    lead = (*shape[:-1], 1)
    spread = jnp.exp(0.25 * jax.random.normal(k_spread, lead))
    return jax.random.normal(k_x, shape) * spread + offset * jax.random.normal(k_shift, lead)


def _loss(module: nn.Module, w: jax.Array):
    # a non-linear read-out so the incoming cotangent differs per element
    return lambda p, x: jnp.sum(jnp.tanh(module.apply({"params": p}, x)) * w)


def _close(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


def test_same_parameters_as_flax():
    x = jnp.ones((3, 7))
    ours = LayerNorm().init(jax.random.key(0), x)
    theirs = nn.LayerNorm().init(jax.random.key(0), x)
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    _close(ours, theirs)


@pytest.mark.parametrize("shape", [(256, 256), (64, 33), (2, 16, 40), (5,)])
def test_forward_and_gradients_match_flax(shape):
    k_p, k_x, k_w = jax.random.split(jax.random.key(1), 3)
    params, x = _params(k_p, shape[-1]), _inputs(k_x, shape)
    w = jax.random.normal(k_w, shape)
    _close(LayerNorm().apply({"params": params}, x), nn.LayerNorm().apply({"params": params}, x))
    for f in (lambda g: g, jax.jit):
        ours = f(jax.grad(_loss(LayerNorm(), w), argnums=(0, 1)))(params, x)
        theirs = f(jax.grad(_loss(nn.LayerNorm(), w), argnums=(0, 1)))(params, x)
        _close(ours, theirs)


def test_vmap_over_parameters_and_inputs():
    """Critic-style: parameters and inputs batched together, gradients through vmap, under jit."""
    heads, n = 3, 48
    keys = jax.random.split(jax.random.key(2), 3)
    params = jax.vmap(lambda k: _params(k, n))(jax.random.split(keys[0], heads))
    x = _inputs(keys[1], (heads, 32, n))
    w = jax.random.normal(keys[2], (heads, 32, n))

    def batched(module):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(jax.vmap(_loss(module, w[0]))(p, x)), argnums=(0, 1)))

    _close(
        jax.vmap(lambda p, x: LayerNorm().apply({"params": p}, x))(params, x),
        jax.vmap(lambda p, x: nn.LayerNorm().apply({"params": p}, x))(params, x),
    )
    _close(batched(LayerNorm())(params, x), batched(nn.LayerNorm())(params, x))


def test_second_order_and_constant_rows():
    """Gradients of gradients match (online critic's gradient penalty); a constant row gives the bias."""
    params = _params(jax.random.key(3), 8)
    const = LayerNorm().apply({"params": params}, jnp.full((2, 8), 4.0))
    np.testing.assert_allclose(np.asarray(const), np.broadcast_to(params["bias"], (2, 8)), atol=1e-5)
    x = _inputs(jax.random.key(4), (3, 8))

    def gnorm(module):
        g = jax.grad(lambda x: jnp.sum(jnp.sin(module.apply({"params": params}, x))))
        return jax.grad(lambda x: jnp.sum(g(x) ** 2))(x)

    _close(gnorm(LayerNorm()), gnorm(nn.LayerNorm()))


def test_accurate_on_offset_rows():
    """Against a float64 reference on rows whose mean is 100x their spread."""
    x = 100.0 + _inputs(jax.random.key(12), (64, 32), offset=0.0)
    p = _params(jax.random.key(13), 32)
    x64 = np.asarray(x, np.float64)
    mu = x64.mean(-1, keepdims=True)
    ref = (x64 - mu) / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-6) * np.asarray(p["scale"])
    ref += np.asarray(p["bias"])
    np.testing.assert_allclose(np.asarray(LayerNorm().apply({"params": p}, x)), ref, rtol=1e-4, atol=1e-4)


def test_function_form_and_epsilon():
    x = _inputs(jax.random.key(5), (4, 10))
    p = _params(jax.random.key(6), 10)
    ref = nn.LayerNorm(epsilon=1e-3).apply({"params": p}, x)
    _close(layer_norm(x, p["scale"], p["bias"], 1e-3), ref)
    _close(LayerNorm(epsilon=1e-3).apply({"params": p}, x), ref)


@pytest.mark.parametrize("module", [MLP((16, 16), 3, True), Value((16, 16), True), Actor((16, 16), 2, True)])
def test_networks_match_flax_layernorm(module, monkeypatch):
    """The whole MLPs, with networks.LayerNorm swapped for flax's: same parameters, outputs, gradients."""
    import fdivrl.learning.networks as networks

    obs = _inputs(jax.random.key(7), (9, 5))
    params = module.init(jax.random.key(8), obs)

    def loss(p):
        return sum(jnp.sum(jnp.tanh(o)) for o in jax.tree.leaves(module.apply(p, obs)))

    ours = module.apply(params, obs), jax.grad(loss)(params)
    monkeypatch.setattr(networks, "LayerNorm", nn.LayerNorm)
    assert jax.tree.structure(module.init(jax.random.key(8), obs)) == jax.tree.structure(params)
    _close(ours, (module.apply(params, obs), jax.grad(loss)(params)))


def test_critic_heads_match_flax_layernorm(monkeypatch):
    import fdivrl.learning.networks as networks

    critic = Critic((16, 16), 2, True)
    obs, act = _inputs(jax.random.key(9), (9, 5)), _inputs(jax.random.key(10), (9, 2))
    params = critic.init(jax.random.key(11), obs, act)

    def loss(p):
        return jnp.sum(jnp.tanh(critic.apply(p, obs, act)))

    ours = critic.apply(params, obs, act), jax.jit(jax.grad(loss))(params)
    monkeypatch.setattr(networks, "LayerNorm", nn.LayerNorm)
    _close(ours, (critic.apply(params, obs, act), jax.jit(jax.grad(loss))(params)))


def test_dtype_follows_flax():
    x = _inputs(jax.random.key(14), (4, 16)).astype(jnp.bfloat16)
    p = _params(jax.random.key(15), 16)
    ours = LayerNorm().apply({"params": p}, x)
    theirs = nn.LayerNorm().apply({"params": p}, x)
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-2, atol=1e-2)
