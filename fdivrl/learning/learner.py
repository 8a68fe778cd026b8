"""The learner: pure functions of explicit state, no I/O.

Two gradient steps share the value, priority and replay code:

One offline gradient step (XQL-style in-sample learning with ROER priorities), in order:
1. value: V regresses on min Q_targ(s, a_data) with the per_type's dual loss ℓ((Q − V)/β);
2. critic: Q ← r + γ·mask·V(s') (in-sample, no policy actions, so nothing is extrapolated),
   loss weighted per sample by the replay's loss weights (ROER weights or importance weights);
3. priorities from the *new* V: δ = r + γ·mask·V(s') − V(s), weight(δ/β) written back;
4. actor: AWR on dataset actions with the per_type's policy weight of (Q − V)·awr_temperature.
`update_n` fuses K steps with lax.scan and is vmapped over seeds (dataset shared, state per seed).

One online SAC+ROER step (docs/references.md §1), in order:
1. critic: soft Bellman target r + γ·mask·(min Q_targ(s', a') − α·log π(a'|s')), per-sample replay
   weights, optional gradient penalty on ‖∇_a Q‖ > 1;
2. value: V regresses on min Q_targ(s, ã) of noise-smoothed dataset actions with the per_type's loss;
3. priorities from the new V, as offline (steps 2–3 are skipped with uniform replay: plain SAC);
4. actor (reparametrized SAC) and temperature (target entropy −|A|/2 by default).
`online_update_n` first writes the newest env transitions into the per-seed ring buffer, then fuses
its updates the same way.
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

from fdivrl import checks
from fdivrl.core.divergences import Divergence, DivergenceConfig
from fdivrl.errors import ConfigError
from fdivrl.learning import replay
from fdivrl.learning.networks import Actor, Critic, Value, sample_squashed, tanh_mean_logp

NETWORKS = ("actor", "critic", "value")


@dataclass(frozen=True)
class LearnerConfig:
    """Network and optimizer hyperparameters (defaults: ROER/XQL's)."""

    hidden: tuple[int, ...] = (256, 256)
    layer_norm: tuple[str, ...] = ("value",)
    """Networks with LayerNorm after each hidden layer: any of actor, critic, value. XQL's offline
    setting is the value network only (it keeps the in-sample V bounded); ROER online uses none."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    cosine_actor_lr: bool = False
    """Cosine-decay the actor learning rate over `total_steps` (IQL's schedule; XQL's AntMaze
    configs keep it flat, and a short run with the decay learns nothing: see docs/presets.md)."""
    total_steps: int = 1_000_000
    discount: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    """Minibatch size."""
    critic_loss: str = "huber"
    """huber (XQL offline and ROER with priorities: Huber with delta `huber_delta`) or mse (ROER's
    SAC without priorities)."""
    huber_delta: float = 20.0
    awr_temperature: float = 10.0
    """Policy weight = per_type policy_weight((Q − V)·awr_temperature); 10 as IQL/XQL on AntMaze."""
    init_temperature: float = 1.0
    """Online SAC's initial entropy temperature α."""
    target_entropy: float | None = None
    """Online SAC's entropy target; None means −|A|/2 (ROER)."""
    grad_penalty: float = 0.0
    """λ_gp of the online critic's penalty Σ_heads mean(max(‖∇_a Q_h‖ − 1, 0)²) (ROER's form and default 1)."""
    value_noise: float = 0.1
    """Online value step: σ of the Gaussian smoothing noise on buffer actions (clipped at ±0.5)."""
    clip_targets: bool = False
    """Clip the critic's TD targets to the range a discounted return of the data's rewards can have
    (AntMaze's r − 1 in {−1, 0}: −100 to 0 at γ = 0.99), so an optimistic value loss cannot add up
    through the bootstrap past any possible return. The priorities' TD errors use the clipped
    targets too; metrics.jsonl logs how often the clip cuts (`target_clip_frac`) and the unclipped
    mean (`target_raw_mean`)."""

    def validate(self) -> LearnerConfig:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be positive, got {self.hidden}")
        for key in ("actor_lr", "critic_lr", "value_lr", "huber_delta", "awr_temperature", "init_temperature"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if not 0 <= self.discount < 1:
            raise ConfigError(f"discount must lie in [0, 1), got {self.discount}")
        if not 0 < self.tau <= 1:
            raise ConfigError(f"tau must lie in (0, 1], got {self.tau}")
        checks.count("batch_size", self.batch_size)
        checks.count("total_steps", self.total_steps)
        if self.grad_penalty < 0 or self.value_noise < 0:
            raise ConfigError("grad_penalty and value_noise must be >= 0")
        if not isinstance(self.layer_norm, tuple) or any(n not in NETWORKS for n in self.layer_norm):
            raise ConfigError(f"layer_norm lists networks among {', '.join(NETWORKS)}; got {self.layer_norm!r}")
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
    temperature: TrainState | None = None
    """log α of online SAC; None offline."""


@dataclass(frozen=True)
class Learner:
    """Everything static about a training program; its methods are the pure functions."""

    div: Divergence
    div_cfg: DivergenceConfig
    replay_cfg: replay.ReplayConfig
    cfg: LearnerConfig
    obs_dim: int
    act_dim: int
    target_bounds: tuple[float, float] | None = None
    """The return range the TD targets are clipped to when cfg.clip_targets (the data's, offline)."""

    def __post_init__(self) -> None:
        if self.cfg.clip_targets and self.target_bounds is None:
            raise ConfigError("clip_targets needs the return range of the data's rewards (offline only)")

    @property
    def actor_def(self) -> Actor:
        return Actor(self.cfg.hidden, self.act_dim, "actor" in self.cfg.layer_norm)

    @property
    def critic_def(self) -> Critic:
        return Critic(self.cfg.hidden, 2, "critic" in self.cfg.layer_norm)

    @property
    def value_def(self) -> Value:
        return Value(self.cfg.hidden, "value" in self.cfg.layer_norm)

    def init(self, key: jax.Array, n_data: int, capacity: int | None = None, online: bool = False) -> LearnerState:
        """Fresh state for one seed; vmap it over keys for several seeds. `online` adds SAC's temperature."""
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
        temperature = None
        if online:
            log_alpha = {"log_alpha": jnp.log(jnp.asarray(c.init_temperature, jnp.float32))}
            temperature = TrainState.create(apply_fn=None, params=log_alpha, tx=optax.adam(c.actor_lr))
        return LearnerState(
            actor=actor,
            critic=critic,
            target_critic=critic_params,
            value=value,
            replay=replay.init(capacity or n_data, n_data, self.replay_cfg),
            key=k_next,
            step=jnp.zeros((), jnp.int32),
            temperature=temperature,
        )

    def critic_loss(self, err: jax.Array) -> jax.Array:
        if self.cfg.critic_loss == "huber":
            return optax.huber_loss(err, delta=self.cfg.huber_delta)
        return err**2

    def _value_step(
        self, value: TrainState, obs: jax.Array, q_targ: jax.Array, buffer_w: jax.Array
    ) -> tuple[TrainState, dict]:
        """V regresses on q_targ with the per_type's dual loss ℓ((Q − V)/β), each sample weighted
        back to the buffer's distribution, so V stays the buffer's multiplier in both mechanisms."""

        def loss(params):
            v = self.value_def.apply(params, obs)
            return self.div.value_loss(q_targ, v, self.div_cfg, buffer_w), v

        (v_loss, v_old), grads = jax.value_and_grad(loss, has_aux=True)(value.params)
        return value.apply_gradients(grads=grads), {"value_loss": v_loss, "v_mean": v_old.mean()}

    def _values(self, value: TrainState, b: Batch) -> tuple[jax.Array, jax.Array]:
        """V(s) and V(s') in one batched call."""
        both = self.value_def.apply(value.params, jnp.concatenate([b.observations, b.next_observations]))
        v_s, v_next = jnp.split(both, 2)
        return v_s, v_next

    def _priority_step(
        self, state: replay.ReplayState, idx: jax.Array, delta: jax.Array
    ) -> tuple[replay.ReplayState, dict]:
        """weight(δ/β) of the fresh TD errors δ, written back for idx; δ = r + γ·mask·V(s') − V(s),
        or the critic's TD error for a per_type with critic priorities (PER)."""
        rc = self.replay_cfg
        raw = self.div.weight(delta / self.div_cfg.beta, self.div_cfg)
        metrics = {
            "td_abs_mean": jnp.abs(delta).mean(),
            "priority_raw_mean": raw.mean(),
            "priority_raw_max": raw.max(),
            # fresh weights the clips cut: all at one clip means the priority carries no information
            "priority_raw_lower_frac": jnp.mean(raw <= rc.lower_clip),
            "priority_raw_cap_frac": jnp.mean(raw >= rc.max_clip),
        }
        return replay.update(state, idx, raw, rc), metrics

    def _sample(
        self, state: LearnerState, data: Batch, key: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array, Batch]:
        idx, loss_w, buffer_w = replay.sample_batch(state.replay, key, self.cfg.batch_size, self.replay_cfg)
        return idx, loss_w, buffer_w, jax.tree_util.tree_map(lambda x: x[idx], data)

    def offline_step(self, state: LearnerState, data: Batch) -> tuple[LearnerState, dict[str, jax.Array]]:
        c, dc = self.cfg, self.div_cfg
        key, k_sample = jax.random.split(state.key)
        idx, loss_w, buffer_w, b = self._sample(state, data, k_sample)

        # 1. value: the dual loss on min Q_targ of dataset actions
        q_targ = self.critic_def.apply(state.target_critic, b.observations, b.actions).min(0)
        value, v_metrics = self._value_step(state.value, b.observations, q_targ, buffer_w)

        # 2. critic: in-sample target Q ← r + γ·mask·V(s') of the new V, per-sample replay weights
        v_s, v_next = self._values(value, b)
        target = b.rewards + c.discount * b.masks * v_next
        clip_metrics: dict[str, jax.Array] = {}
        if c.clip_targets:
            raw_target, target = target, jnp.clip(target, *self.target_bounds)
            clip_metrics = {"target_clip_frac": jnp.mean(raw_target != target), "target_raw_mean": raw_target.mean()}

        def critic_loss(params):
            q = self.critic_def.apply(params, b.observations, b.actions)
            return jnp.sum(jnp.mean(loss_w * self.critic_loss(q - target), axis=-1)), q

        (q_loss, q), q_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic.params)
        critic = state.critic.apply_gradients(grads=q_grads)
        target_critic = optax.incremental_update(critic.params, state.target_critic, c.tau)

        # 3. priorities from the new V (or the critic's TD error)
        delta = self._critic_td(target, q) if self.div.critic_priority else target - v_s
        new_replay, p_metrics = self._priority_step(state.replay, idx, delta)

        # 4. actor: advantage-weighted regression with the per_type's policy weight
        pol_w = jax.lax.stop_gradient(self.div.policy_weight((q_targ - v_s) * c.awr_temperature, dc))

        def actor_loss(params):
            mean, log_std = self.actor_def.apply(params, b.observations)
            return -jnp.mean(buffer_w * pol_w * tanh_mean_logp(b.actions, mean, log_std))

        a_loss, a_grads = jax.value_and_grad(actor_loss)(state.actor.params)
        actor = state.actor.apply_gradients(grads=a_grads)

        metrics = {
            "critic_loss": q_loss,
            "actor_loss": a_loss,
            "q_mean": q.mean(),
            "target_mean": target.mean(),
            **v_metrics,
            **p_metrics,
            **_loss_weight_metrics(loss_w),
            "policy_weight_mean": pol_w.mean(),
            **clip_metrics,
        }
        new_state = state._replace(
            actor=actor,
            critic=critic,
            target_critic=target_critic,
            value=value,
            replay=new_replay,
            key=key,
            step=state.step + 1,
        )
        return new_state, metrics

    @staticmethod
    def _critic_td(target: jax.Array, q: jax.Array) -> jax.Array:
        """The critic's TD error, mean over its heads: the priority source of PER (ROER's code)."""
        return jnp.mean(jax.lax.stop_gradient(target - q), axis=0)

    def online_critic_loss(
        self, params: Any, obs: jax.Array, actions: jax.Array, target: jax.Array, w: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Σ_heads mean(w·ℓ(Q − target)) + λ_gp·Σ_heads mean(max(‖∇_a Q_h‖ − 1, 0)²) (ROER's sum over
        heads); returns (loss, Q)."""
        q, vjp = jax.vjp(partial(self.critic_def.apply, params, obs), actions)
        loss = jnp.sum(jnp.mean(w * self.critic_loss(q - target), axis=-1))
        if self.cfg.grad_penalty > 0:
            # ∇_a Q of each head from the same forward pass: one vjp per head's cotangent
            heads = jnp.eye(q.shape[0], dtype=q.dtype)[:, :, None] * jnp.ones_like(q)[None]
            (grad_a,) = jax.vmap(vjp)(heads)
            excess = jnp.maximum(jnp.linalg.norm(grad_a, axis=-1) - 1.0, 0.0)
            loss = loss + self.cfg.grad_penalty * jnp.sum(jnp.mean(excess**2, axis=-1))
        return loss, q

    def online_step(self, state: LearnerState, data: Batch) -> tuple[LearnerState, dict[str, jax.Array]]:
        c = self.cfg
        key, k_sample, k_next, k_noise, k_pi = jax.random.split(state.key, 5)
        idx, loss_w, buffer_w, b = self._sample(state, data, k_sample)
        alpha = jnp.exp(state.temperature.params["log_alpha"])

        # 1. critic: soft Bellman target with the entropy backup
        mean, log_std = self.actor_def.apply(state.actor.params, b.next_observations)
        a_next, logp_next = sample_squashed(k_next, mean, log_std)
        q_next = self.critic_def.apply(state.target_critic, b.next_observations, a_next).min(0)
        target = b.rewards + c.discount * b.masks * (q_next - alpha * logp_next)

        critic_loss = partial(self.online_critic_loss, obs=b.observations, actions=b.actions, target=target, w=loss_w)
        (q_loss, q), q_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic.params)
        critic = state.critic.apply_gradients(grads=q_grads)
        target_critic = optax.incremental_update(critic.params, state.target_critic, c.tau)

        # 2.–3. value and priorities; plain SAC (uniform replay) uses neither, so it skips them, and
        # critic priorities (PER) need no V
        value, new_replay, v_metrics = state.value, state.replay, {}
        if self.replay_cfg.prioritized and self.div.critic_priority:
            new_replay, v_metrics = self._priority_step(state.replay, idx, self._critic_td(target, q))
        elif self.replay_cfg.prioritized:
            noise = jnp.clip(c.value_noise * jax.random.normal(k_noise, b.actions.shape), -0.5, 0.5)
            a_smooth = jnp.clip(b.actions + noise, -1.0, 1.0)
            q_targ = self.critic_def.apply(target_critic, b.observations, a_smooth).min(0)
            value, v_metrics = self._value_step(state.value, b.observations, q_targ, buffer_w)
            v_s, v_next = self._values(value, b)
            delta = b.rewards + c.discount * b.masks * v_next - v_s
            new_replay, p_metrics = self._priority_step(state.replay, idx, delta)
            v_metrics = {**v_metrics, **p_metrics}

        # 4. actor and temperature
        def actor_loss(params):
            mean, log_std = self.actor_def.apply(params, b.observations)
            a, logp = sample_squashed(k_pi, mean, log_std)
            q_pi = self.critic_def.apply(critic.params, b.observations, a).min(0)
            return jnp.mean(buffer_w * (alpha * logp - q_pi)), logp

        (a_loss, logp), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor.params)
        actor = state.actor.apply_gradients(grads=a_grads)
        entropy = -jax.lax.stop_gradient(logp).mean()
        target_entropy = c.target_entropy if c.target_entropy is not None else -self.act_dim / 2

        def temperature_loss(params):
            return jnp.exp(params["log_alpha"]) * (entropy - target_entropy)

        t_loss, t_grads = jax.value_and_grad(temperature_loss)(state.temperature.params)
        temperature = state.temperature.apply_gradients(grads=t_grads)

        metrics = {
            "critic_loss": q_loss,
            "actor_loss": a_loss,
            "temperature_loss": t_loss,
            "temperature": alpha,
            "entropy": entropy,
            "q_mean": q.mean(),
            "target_mean": target.mean(),
            **v_metrics,
            **_loss_weight_metrics(loss_w),
        }
        new_state = state._replace(
            actor=actor,
            critic=critic,
            target_critic=target_critic,
            value=value,
            replay=new_replay,
            key=key,
            step=state.step + 1,
            temperature=temperature,
        )
        return new_state, metrics

    def update_n(self, state: LearnerState, data: Batch, n_steps: int) -> tuple[LearnerState, dict[str, jax.Array]]:
        """n_steps fused offline steps (lax.scan) for one seed; metrics averaged over the chunk."""
        state = state._replace(replay=replay.rebuild(state.replay, self.replay_cfg))
        state, metrics = jax.lax.scan(lambda s, _: self.offline_step(s, data), state, None, length=n_steps)
        return state, jax.tree_util.tree_map(jnp.mean, metrics)

    def compiled_update(
        self, n_steps: int, shared_data: bool = True
    ) -> Callable[[LearnerState, Batch], tuple[LearnerState, dict]]:
        """The jitted, seed-vmapped K-step offline program: state has a leading seed axis; data is
        shared by all seeds (a dataset) or has its own seed axis (a per-seed online buffer)."""
        fn = partial(self.update_n, n_steps=n_steps)
        return jax.jit(jax.vmap(fn, in_axes=(0, None if shared_data else 0)), donate_argnums=0)

    def insert(self, state: LearnerState, data: Batch, new: Batch, ptr: jax.Array) -> tuple[LearnerState, Batch]:
        """Write k new transitions into the ring buffer at ptr, ptr+1, … (mod capacity) as fresh items."""
        capacity = data.rewards.shape[0]
        idx = (ptr + jnp.arange(new.rewards.shape[0], dtype=jnp.int32)) % capacity
        data = jax.tree_util.tree_map(lambda d, n: d.at[idx].set(n), data, new)
        return state._replace(replay=replay.add(state.replay, idx, self.replay_cfg)), data

    def online_update_n(
        self, state: LearnerState, data: Batch, new: Batch, ptr: jax.Array, n_steps: int, rebuild: bool
    ) -> tuple[LearnerState, Batch, dict[str, jax.Array]]:
        """Insert the newest env transitions, then n_steps fused online steps (n_steps may be 0)."""
        state, data = self.insert(state, data, new, ptr)
        if rebuild:
            state = state._replace(replay=replay.rebuild(state.replay, self.replay_cfg))
        if n_steps == 0:
            return state, data, {}
        state, metrics = jax.lax.scan(lambda s, _: self.online_step(s, data), state, None, length=n_steps)
        return state, data, jax.tree_util.tree_map(jnp.mean, metrics)

    def compiled_online(self, n_steps: int, rebuild: bool = False) -> Callable:
        """(state, data, new, ptr) → (state, data, metrics), all with a leading seed axis but ptr."""
        fn = partial(self.online_update_n, n_steps=n_steps, rebuild=rebuild)
        return jax.jit(jax.vmap(fn, in_axes=(0, 0, 0, None)), donate_argnums=(0, 1))

    def init_seeds(
        self, seeds: list[int], n_data: int, capacity: int | None = None, online: bool = False
    ) -> LearnerState:
        keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
        state = jax.vmap(lambda k: self.init(k, n_data, capacity, online))(keys)
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

    def explore(self, actor_params: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        """A sampled (squashed Gaussian) action for collecting experience online."""
        mean, log_std = self.actor_def.apply(actor_params, obs)
        return sample_squashed(key, mean, log_std)[0]


def _loss_weight_metrics(loss_w: jax.Array) -> dict[str, jax.Array]:
    """What the critic's per-sample weights of one batch look like: their mean and spread
    (coefficient of variation; 0 is uniform replay whatever the per_type)."""
    mean = loss_w.mean()
    return {"loss_weight_mean": mean, "loss_weight_cv": loss_w.std() / jnp.maximum(mean, 1e-12)}


def to_batch(transitions: Any) -> Batch:
    """Device arrays of the fields the learner reads, from any object with those attributes."""
    return Batch(
        observations=jnp.asarray(transitions.observations, jnp.float32),
        actions=jnp.asarray(transitions.actions, jnp.float32),
        rewards=jnp.asarray(transitions.rewards, jnp.float32),
        next_observations=jnp.asarray(transitions.next_observations, jnp.float32),
        masks=jnp.asarray(transitions.masks, jnp.float32),
    )
