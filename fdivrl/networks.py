"""Flax modules of the SAC building blocks, and the action distributions as pure functions.

The actor outputs (mean, log_std). Two readings of that output share one network:
- squashed: a = tanh(u), u ~ N(mean, std) — SAC's actor (sampling with log-prob and entropy);
- tanh-mean: a ~ N(tanh(mean), std) — the AWR reading of IQL/XQL for offline extraction, which
  scores dataset actions at ±1 (AntMaze's clipped noise puts many there) without atanh blowing up.
The deterministic action is tanh(mean) in both.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class MLP(nn.Module):
    hidden: Sequence[int]
    out: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for h in self.hidden:
            x = nn.Dense(h, kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)))(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(1e-2))(x)


class Critic(nn.Module):
    """n_heads Q networks evaluated as one batched program (nn.vmap over parameters)."""

    hidden: Sequence[int]
    n_heads: int = 2
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, act: jax.Array) -> jax.Array:
        heads = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_heads,
        )
        return heads(self.hidden, 1, self.layer_norm)(jnp.concatenate([obs, act], -1))[..., 0]


class Value(nn.Module):
    hidden: Sequence[int]
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.layer_norm)(obs)[..., 0]


class Actor(nn.Module):
    hidden: Sequence[int]
    act_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.act_dim, self.layer_norm)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def _normal_logp(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    return jnp.sum(-0.5 * ((x - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), -1)


def sample_squashed(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SAC's reparametrized tanh-Gaussian sample and its log-probability."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    a = jnp.tanh(u)
    # log|d tanh(u)/du| = 2(log 2 − u − softplus(−2u)), stable for large |u|
    logp = _normal_logp(u, mean, log_std) - jnp.sum(2 * (jnp.log(2.0) - u - jax.nn.softplus(-2 * u)), -1)
    return a, logp


def tanh_mean_logp(action: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(action; tanh(mean), std): the AWR policy-extraction likelihood of dataset actions."""
    return _normal_logp(action, jnp.tanh(mean), log_std)
