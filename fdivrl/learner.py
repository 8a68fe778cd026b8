"""The learner: pure functions of explicit state, no I/O.

One offline gradient step (XQL-style in-sample learning with ROER priorities), in order:
1. value: V regresses on min Q_targ(s, a_data) with the per_type's dual loss ℓ((Q − V)/β);
2. critic: Q ← r + γ·mask·V(s') (in-sample, no policy actions, so nothing is extrapolated),
   loss weighted per sample by the replay's loss weights (ROER weights or importance weights);
3. priorities from the *new* V: δ = r + γ·mask·V(s') − V(s), weight(δ/β) written back;
4. actor: AWR on dataset actions with the per_type's policy weight of (Q − V)·awr_temperature.
`update_n` fuses K steps with lax.scan and is vmapped over seeds (dataset shared, state per seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from fdivrl import replay
from fdivrl.divergences import Divergence, DivergenceConfig
from fdivrl.errors import ConfigError
from fdivrl.networks import Actor, Critic, Value, tanh_mean_logp


@dataclass(frozen=True)
class LearnerConfig:
    """Network and optimizer hyperparameters (defaults: ROER/XQL's)."""

    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    """LayerNorm in every MLP (XQL's offline setting; keeps in-sample values bounded)."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    cosine_actor_lr: bool = True
    """Cosine-decay the actor learning rate over `total_steps` (XQL/IQL offline)."""
    total_steps: int = 1_000_000
    discount: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    critic_loss: str = "mse"
    """mse (XQL offline) or huber (ROER: Huber with delta `huber_delta`)."""
    huber_delta: float = 20.0
    awr_temperature: float = 10.0
    """Policy weight = per_type policy_weight((Q − V)·awr_temperature); 10 as IQL/XQL on AntMaze."""

    def validate(self) -> LearnerConfig:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be positive, got {self.hidden}")
        for key in ("actor_lr", "critic_lr", "value_lr", "huber_delta", "awr_temperature"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if not 0 <= self.discount < 1:
            raise ConfigError(f"discount must lie in [0, 1), got {self.discount}")
        if not 0 < self.tau <= 1:
            raise ConfigError(f"tau must lie in (0, 1], got {self.tau}")
        if self.batch_size < 1 or self.total_steps < 1:
            raise ConfigError("batch_size and total_steps must be >= 1")
        if self.critic_loss not in ("mse", "huber"):
            raise ConfigError(f"critic_loss {self.critic_loss!r} is not valid; choose one of: mse, huber")
        return self


class Batch(NamedTuple):
    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    masks: jax.Array


class LearnerState(NamedTuple):
    actor: TrainState
    critic: TrainState
    target_critic: Any
    value: TrainState
    replay: replay.ReplayState
    key: jax.Array
    step: jax.Array


@dataclass(frozen=True)
class Learner:
    """Everything static about a training program; its methods are the pure functions."""

    div: Divergence
    div_cfg: DivergenceConfig
    replay_cfg: replay.ReplayConfig
    cfg: LearnerConfig
    obs_dim: int
    act_dim: int

    @property
    def actor_def(self) -> Actor:
        return Actor(self.cfg.hidden, self.act_dim, self.cfg.layer_norm)

    @property
    def critic_def(self) -> Critic:
        return Critic(self.cfg.hidden, 2, self.cfg.layer_norm)

    @property
    def value_def(self) -> Value:
        return Value(self.cfg.hidden, self.cfg.layer_norm)

    def init(self, key: jax.Array, n_data: int, capacity: int | None = None) -> LearnerState:
        """Fresh state for one seed; vmap it over keys for several seeds."""
        k_actor, k_critic, k_value, k_next = jax.random.split(key, 4)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        act = jnp.zeros((1, self.act_dim), jnp.float32)
        c = self.cfg
        actor_lr = optax.cosine_decay_schedule(c.actor_lr, c.total_steps) if c.cosine_actor_lr else c.actor_lr
        actor = TrainState.create(
            apply_fn=self.actor_def.apply, params=self.actor_def.init(k_actor, obs), tx=optax.adam(actor_lr)
        )
        critic_params = self.critic_def.init(k_critic, obs, act)
        critic = TrainState.create(apply_fn=self.critic_def.apply, params=critic_params, tx=optax.adam(c.critic_lr))
        value = TrainState.create(
            apply_fn=self.value_def.apply, params=self.value_def.init(k_value, obs), tx=optax.adam(c.value_lr)
        )
        return LearnerState(
            actor=actor,
            critic=critic,
            target_critic=critic_params,
            value=value,
            replay=replay.init(capacity or n_data, n_data, self.replay_cfg),
            key=k_next,
            step=jnp.zeros((), jnp.int32),
        )

    def critic_loss(self, err: jax.Array) -> jax.Array:
        if self.cfg.critic_loss == "huber":
            return optax.huber_loss(err, delta=self.cfg.huber_delta)
        return err**2

    def offline_step(self, state: LearnerState, data: Batch) -> tuple[LearnerState, dict[str, jax.Array]]:
        c, dc = self.cfg, self.div_cfg
        key, k_sample = jax.random.split(state.key)
        idx, loss_w = replay.sample(state.replay, k_sample, c.batch_size, self.replay_cfg)
        b = jax.tree_util.tree_map(lambda x: x[idx], data)

        # 1. value: the dual loss on min Q_targ of dataset actions
        q_targ = self.critic_def.apply(state.target_critic, b.observations, b.actions).min(0)

        def value_loss(params):
            v = self.value_def.apply(params, b.observations)
            return self.div.value_loss(q_targ, v, dc), v

        (v_loss, v_old), v_grads = jax.value_and_grad(value_loss, has_aux=True)(state.value.params)
        value = state.value.apply_gradients(grads=v_grads)

        # V(s) and V(s') of the new value network in one batched call
        both = self.value_def.apply(value.params, jnp.concatenate([b.observations, b.next_observations]))
        v_s, v_next = jnp.split(both, 2)
        target = b.rewards + c.discount * b.masks * v_next

        # 2. critic: in-sample target, per-sample replay weights
        def critic_loss(params):
            q = self.critic_def.apply(params, b.observations, b.actions)
            return jnp.sum(jnp.mean(loss_w * self.critic_loss(q - target), axis=-1)), q

        (q_loss, q), q_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic.params)
        critic = state.critic.apply_gradients(grads=q_grads)
        target_critic = optax.incremental_update(critic.params, state.target_critic, c.tau)

        # 3. priorities from the new V
        delta = target - v_s
        raw = self.div.weight(delta / dc.beta, dc)
        new_replay = replay.update(state.replay, idx, raw, self.replay_cfg)

        # 4. actor: advantage-weighted regression with the per_type's policy weight
        pol_w = jax.lax.stop_gradient(self.div.policy_weight((q_targ - v_s) * c.awr_temperature, dc))

        def actor_loss(params):
            mean, log_std = self.actor_def.apply(params, b.observations)
            return -jnp.mean(pol_w * tanh_mean_logp(b.actions, mean, log_std))

        a_loss, a_grads = jax.value_and_grad(actor_loss)(state.actor.params)
        actor = state.actor.apply_gradients(grads=a_grads)

        metrics = {
            "critic_loss": q_loss,
            "value_loss": v_loss,
            "actor_loss": a_loss,
            "q_mean": q.mean(),
            "v_mean": v_old.mean(),
            "target_mean": target.mean(),
            "td_abs_mean": jnp.abs(delta).mean(),
            "priority_raw_mean": raw.mean(),
            "priority_raw_max": raw.max(),
            "loss_weight_mean": loss_w.mean(),
            "policy_weight_mean": pol_w.mean(),
        }
        new_state = LearnerState(actor, critic, target_critic, value, new_replay, key, state.step + 1)
        return new_state, metrics

    def update_n(self, state: LearnerState, data: Batch, n_steps: int) -> tuple[LearnerState, dict[str, jax.Array]]:
        """n_steps fused steps (lax.scan) for one seed; metrics averaged over the chunk."""
        state = state._replace(replay=replay.rebuild(state.replay, self.replay_cfg))
        state, metrics = jax.lax.scan(lambda s, _: self.offline_step(s, data), state, None, length=n_steps)
        return state, jax.tree_util.tree_map(jnp.mean, metrics)

    def compiled_update(self, n_steps: int) -> Callable[[LearnerState, Batch], tuple[LearnerState, dict]]:
        """The jitted, seed-vmapped K-step program: state has a leading seed axis, data is shared."""
        fn = partial(self.update_n, n_steps=n_steps)
        return jax.jit(jax.vmap(fn, in_axes=(0, None)), donate_argnums=0)

    def init_seeds(self, seeds: list[int], n_data: int, capacity: int | None = None) -> LearnerState:
        keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
        state = jax.vmap(lambda k: self.init(k, n_data, capacity))(keys)
        # equal leaves (target = online critic at init) may share a buffer: the donating update
        # program needs every leaf in its own buffer
        return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), state)

    def replay_stats(self, state: LearnerState) -> dict[str, jax.Array]:
        """Priority statistics per seed (O(N): call once per logging interval, not per step)."""
        return jax.vmap(lambda r: replay.stats(r, self.replay_cfg))(state.replay)

    def act(self, actor_params: Any, obs: jax.Array) -> jax.Array:
        """Deterministic action tanh(mean) for evaluation."""
        mean, _ = self.actor_def.apply(actor_params, obs)
        return jnp.tanh(mean)


def to_batch(transitions: Any) -> Batch:
    """Device arrays of the fields the learner reads, from any object with those attributes."""
    return Batch(
        observations=jnp.asarray(transitions.observations, jnp.float32),
        actions=jnp.asarray(transitions.actions, jnp.float32),
        rewards=jnp.asarray(transitions.rewards, jnp.float32),
        next_observations=jnp.asarray(transitions.next_observations, jnp.float32),
        masks=jnp.asarray(transitions.masks, jnp.float32),
    )
