"""`fdivrl train --mode online|finetune`: gymnasium envs on the host, the fused learner on the device.

One env per seed steps on the host; every `chunk` env steps the new transitions go to the device in
one call that writes them into each seed's ring buffer and runs `utd × chunk` fused SAC+ROER updates
(the same jitted, seed-vmapped code path as offline). Finetune first fills the buffer with a whole
minari dataset (priority 1, rewards shifted like the online ones) and may pretrain offline on it.

Resume restores the learner, the buffer and every RNG that lives in the checkpoint; the env episodes
that were running at the checkpoint restart from a fresh (seeded) reset, so a resumed online run
continues from its last checkpoint but is not number-for-number an uninterrupted one (offline runs
are).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from fdivrl.analysis import results
from fdivrl.config import TrainConfig
from fdivrl.data import datasets as minari_data
from fdivrl.errors import ConfigError, DatasetError
from fdivrl.learning.learner import Batch, Learner, LearnerState, to_batch
from fdivrl.training import evaluation, loop

PRETRAIN_CHUNK = 1000
"""Offline steps fused per call while pretraining (finetune's --pretrain-steps)."""
REBUILD_EVERY_UPDATES = 10_000
"""Sum-tree rebuild interval (sample mode): float32 sums are re-derived from the leaves."""


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """How to build and read an env: its factory, observation flattening and action scaling."""

    make: Callable[[], gym.Env]
    obs_fn: Callable[[Any], np.ndarray]
    obs_dim: int
    act_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    env_id: str

    def to_env_action(self, a: np.ndarray) -> np.ndarray:
        """The learner's actions live in [-1, 1]; the env's Box may be narrower or wider."""
        return self.action_low + (np.asarray(a, np.float64) + 1.0) * 0.5 * (self.action_high - self.action_low)


def _register_envs(env_id: str) -> None:
    minari_data.register_robotics_envs()
    if env_id.startswith("fdivrl/"):
        from fdivrl.data.antmaze import walker

        walker.register()


def env_info(make: Callable[[], gym.Env], env_id: str, obs_keys: tuple[str, ...]) -> EnvInfo:
    """Check an env's spaces once and describe it; bad envs are one-line ConfigErrors."""
    try:
        env = make()
    except gym.error.Error as exc:
        raise ConfigError(f"unknown or unusable env {env_id!r}: {exc}") from exc
    try:
        act_space, obs_space = env.action_space, env.observation_space
    finally:
        env.close()
    if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
        raise ConfigError(
            f"env {env_id!r} has a {type(act_space).__name__} action space; fdivrl's SAC needs a flat Box "
            "(continuous actions)"
        )
    low, high = np.asarray(act_space.low, np.float64), np.asarray(act_space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ConfigError(f"env {env_id!r} has an unbounded action space; SAC's tanh actions need finite bounds")
    if isinstance(obs_space, gym.spaces.Dict):
        missing = [k for k in obs_keys if k not in obs_space.spaces]
        if missing or not obs_keys:
            raise ConfigError(
                f"env {env_id!r} has dict observations with keys {sorted(obs_space.spaces)}; fdivrl flattens "
                f"dicts only through the keys {list(obs_keys)}"
            )
        obs_fn = evaluation.dict_obs_fn(obs_keys)
        obs_dim = sum(int(np.prod(obs_space.spaces[k].shape)) for k in obs_keys)
    elif isinstance(obs_space, gym.spaces.Box):

        def obs_fn(obs: Any) -> np.ndarray:
            return np.asarray(obs, np.float32)

        if len(obs_space.shape) != 1:
            raise ConfigError(f"env {env_id!r} has observations of shape {obs_space.shape}; fdivrl needs flat vectors")
        obs_dim = int(obs_space.shape[0])
    else:
        raise ConfigError(f"env {env_id!r} has a {type(obs_space).__name__} observation space; fdivrl needs a Box")
    return EnvInfo(make, obs_fn, obs_dim, int(act_space.shape[0]), low, high, env_id)


def gym_env_info(env_id: str, obs_keys: tuple[str, ...]) -> EnvInfo:
    _register_envs(env_id)

    def make() -> gym.Env:
        return minari_data.make_env(env_id)

    return env_info(make, env_id, obs_keys)


def dataset_env_info(info: minari_data.DatasetInfo, obs_keys: tuple[str, ...]) -> EnvInfo:
    """The env the dataset was collected in (finetune trains there), checked against its spaces."""
    if info.env_spec is None:
        raise DatasetError(f"dataset '{info.dataset_id}' records no environment to train in")
    minari_data.register_robotics_envs()
    spec = minari_data.env_spec_from_json(info.env_spec)

    def make() -> gym.Env:
        return minari_data.make_env(spec)

    env = env_info(make, spec.id, obs_keys)
    if (env.obs_dim, env.act_dim) != (info.obs_dim, info.act_dim):
        raise DatasetError(
            f"dataset '{info.dataset_id}' has obs/action dims ({info.obs_dim}, {info.act_dim}) but its env "
            f"{spec.id} gives ({env.obs_dim}, {env.act_dim})"
        )
    return env


class SeedEnvs:
    """One env per seed, stepped in lockstep on the host; episodes reset as they end."""

    def __init__(self, env: EnvInfo, seeds: tuple[int, ...], reset_seed: int, reward_shift: float) -> None:
        self.env = env
        self.envs = [env.make() for _ in seeds]
        self.reward_shift = reward_shift
        self.rngs = [np.random.default_rng([s, reset_seed]) for s in seeds]
        self.obs = np.stack(
            [env.obs_fn(e.reset(seed=int(r.integers(2**31)))[0]) for e, r in zip(self.envs, self.rngs, strict=True)]
        )
        n = len(seeds)
        self.ep_return, self.ep_length, self.ep_success = np.zeros(n), np.zeros(n, np.int64), np.zeros(n, bool)
        self.reports_success = False  # a goal-less env never does: then no train_success is logged
        self.finished: list[list[tuple[float, int, bool]]] = [[] for _ in seeds]

    def random_actions(self) -> np.ndarray:
        return np.stack([r.uniform(-1.0, 1.0, self.env.act_dim) for r in self.rngs]).astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env; returns (obs, rewards, next_obs, masks) with the true final next_obs."""
        obs = self.obs
        next_obs = np.empty_like(obs)
        current = obs.copy()
        rewards = np.empty(len(self.envs), np.float32)
        masks = np.empty(len(self.envs), np.float32)
        for i, env in enumerate(self.envs):
            o, r, terminated, truncated, info = env.step(self.env.to_env_action(actions[i]))
            next_obs[i] = current[i] = self.env.obs_fn(o)
            rewards[i] = float(r) + self.reward_shift
            masks[i] = 0.0 if terminated else 1.0
            self.ep_return[i] += float(r)
            self.ep_length[i] += 1
            self.ep_success[i] |= bool(info.get("success", False))
            self.reports_success |= "success" in info
            if terminated or truncated:
                self.finished[i].append((float(self.ep_return[i]), int(self.ep_length[i]), bool(self.ep_success[i])))
                self.ep_return[i], self.ep_length[i], self.ep_success[i] = 0.0, 0, False
                current[i] = self.env.obs_fn(env.reset(seed=int(self.rngs[i].integers(2**31)))[0])
        self.obs = current
        return obs, rewards, next_obs, masks

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _empty_buffer(capacity: int, obs_dim: int, act_dim: int) -> Batch:
    return Batch(
        observations=jnp.zeros((capacity, obs_dim), jnp.float32),
        actions=jnp.zeros((capacity, act_dim), jnp.float32),
        rewards=jnp.zeros((capacity,), jnp.float32),
        next_observations=jnp.zeros((capacity, obs_dim), jnp.float32),
        masks=jnp.zeros((capacity,), jnp.float32),
    )


def prefill(dataset: Batch, capacity: int) -> Batch:
    """A buffer of `capacity` slots whose first len(dataset) slots hold the dataset unchanged."""
    n = dataset.rewards.shape[0]
    if n > capacity:
        raise ConfigError(f"the buffer ({capacity}) must hold the whole dataset ({n} transitions); raise buffer_size")
    empty = _empty_buffer(capacity, dataset.observations.shape[1], dataset.actions.shape[1])
    return jax.tree_util.tree_map(lambda e, d: e.at[:n].set(d), empty, dataset)


def _seed_stack(tree: Any, n: int) -> Any:
    return jax.tree_util.tree_map(lambda x: jnp.array(jnp.broadcast_to(x, (n, *x.shape)), copy=True), tree)


class OnlineMode:
    """Finetune's offline pretraining chunks first, then env chunks: `chunk` env steps on the host and
    one device call that stores them and runs their updates. Progress = pretrain steps + env steps."""

    headline = "mean_return"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.info: minari_data.DatasetInfo | None = None
        self.transitions: Any = None
        if cfg.mode == "finetune":
            self.transitions, self.info = minari_data.load(
                cfg.dataset, obs_keys=cfg.obs_keys, reward_shift=cfg.reward_shift
            )
            self.env = dataset_env_info(self.info, cfg.obs_keys if self.info.obs_keys else ())
        elif cfg.mode == "online":
            self.env = gym_env_info(cfg.env, cfg.obs_keys)
        else:
            raise ConfigError(f"OnlineMode runs --mode online or finetune, not {cfg.mode!r}")
        self.n_data = self.info.n_transitions if self.info is not None else 0
        self.learner = learner = loop.make_learner(cfg, self.env.obs_dim, self.env.act_dim)
        self.record = {**cfg.to_dict(), "env_id": self.env.env_id}
        self.identity = {"data_fingerprint": self.info.fingerprint if self.info is not None else None}
        if self.info is not None:
            self.record["data"] = loop.dataset_record(self.info)
        self.description = f"{cfg.per_type} {cfg.mode} on {self.env.env_id}"
        self.total = cfg.online.pretrain_steps + cfg.steps
        self.explore = jax.jit(
            jax.vmap(
                lambda p, o, s, t: learner.explore(p, o[None], jax.random.fold_in(jax.random.PRNGKey(s), t))[0],
                in_axes=(0, 0, 0, None),
            )
        )
        self.seeds_arr = jnp.asarray(cfg.seeds, jnp.uint32)
        self.pretrain_programs: dict[int, Callable] = {}
        self.programs: dict[tuple[int, bool], Callable] = {}
        self.envs: SeedEnvs | None = None  # made at the first env chunk, seeded by its env step
        self.pending: list[dict[str, jax.Array]] = []
        self.updates_since_rebuild = self.updates_done = 0
        self.t_env = self.t_update = 0.0
        self.state: LearnerState
        self.data: Batch

    def init(self) -> dict[str, Any]:
        cfg, n_seeds = self.cfg, len(self.cfg.seeds)
        capacity = cfg.online.buffer_size  # fixed by the config, so a resumed run to more steps keeps its buffer
        self.state = self.learner.init_seeds(list(cfg.seeds), self.n_data, capacity, online=True)
        if self.transitions is not None:
            self.data = _seed_stack(prefill(to_batch(self.transitions), capacity), n_seeds)
            self.transitions = None
        else:
            self.data = _seed_stack(_empty_buffer(capacity, self.env.obs_dim, self.env.act_dim), n_seeds)
        return self.tree()

    def tree(self) -> dict[str, Any]:
        return {"state": self.state, "data": self.data}

    def load(self, tree: dict[str, Any]) -> None:
        self.state, self.data = tree["state"], tree["data"]

    def advance(self, progress: int) -> loop.Chunk:
        pretrain_steps = self.cfg.online.pretrain_steps
        if progress < pretrain_steps:
            return self._pretrain(progress)
        return self._env_chunk(progress - pretrain_steps)

    def _pretrain(self, progress: int) -> loop.Chunk:
        """Offline steps on the prefilled buffer; the last one is checkpointed before the env loop."""
        pretrain_steps = self.cfg.online.pretrain_steps
        n = min(PRETRAIN_CHUNK, pretrain_steps - progress)
        if n not in self.pretrain_programs:
            self.pretrain_programs[n] = self.learner.compiled_update(n, shared_data=False)
        t0 = time.perf_counter()
        self.state, metrics = self.pretrain_programs[n](self.state, self.data)
        metrics = jax.device_get(metrics)
        rate = n / max(time.perf_counter() - t0, 1e-9)
        rows = [{"pretrain": 1.0, **{k: float(v[i]) for k, v in metrics.items()}} for i in range(len(self.cfg.seeds))]
        progress += n
        return loop.Chunk(progress, rows, rate, evaluate=False, checkpoint=progress >= pretrain_steps)

    def _env_chunk(self, env_step: int) -> loop.Chunk:
        """`chunk` env steps, then one device call that stores them and runs the updates they earned."""
        cfg, oc = self.cfg, self.cfg.online
        k = min(cfg.chunk, cfg.steps - env_step)
        t0 = time.perf_counter()
        new, n_updates = self._collect(env_step, k)
        t1 = time.perf_counter()
        ptr = jnp.asarray((self.n_data + env_step) % oc.buffer_size, jnp.int32)
        self.updates_since_rebuild += n_updates
        rebuild = cfg.replay.mode == "sample" and self.updates_since_rebuild >= REBUILD_EVERY_UPDATES
        if rebuild:
            self.updates_since_rebuild = 0
        key = (n_updates, rebuild)
        if key not in self.programs:
            self.programs[key] = self.learner.compiled_online(n_updates, rebuild)
        self.state, self.data, metrics = self.programs[key](self.state, self.data, new, ptr)
        if metrics:
            self.pending.append(metrics)
        jax.block_until_ready(self.state.actor.params)
        t2 = time.perf_counter()
        self.t_env, self.t_update = self.t_env + (t1 - t0), self.t_update + (t2 - t1)
        self.updates_done += n_updates
        env_step += k
        final = env_step >= cfg.steps
        rows = None
        if final or env_step % oc.log_every < k:
            rows = _train_rows(self.pending, self.envs, self.learner, self.state, env_step, t1 - t0, t2 - t1, k)
            self.pending = []
        return loop.Chunk(
            oc.pretrain_steps + env_step,
            rows,
            k / max(t2 - t0, 1e-9),
            evaluate=final or env_step % cfg.eval_every < k,
            checkpoint=final or env_step % oc.checkpoint_every < k,
        )

    def _collect(self, env_step: int, k: int) -> tuple[Batch, int]:
        """k steps of every seed's env (uniform actions before start_steps): the transitions, seed-major,
        and the number of updates they earn (utd per step after start_steps)."""
        env, oc, n_seeds = self.env, self.cfg.online, len(self.cfg.seeds)
        if self.envs is None:
            self.envs = SeedEnvs(env, self.cfg.seeds, reset_seed=env_step, reward_shift=self.cfg.reward_shift)
        envs = self.envs
        chunk = [np.empty((n_seeds, k, d), np.float32) for d in (env.obs_dim, env.act_dim, 1, env.obs_dim, 1)]
        n_updates = 0
        for j in range(k):
            t = env_step + j
            if t < oc.start_steps:
                a = envs.random_actions()
            else:
                a = np.asarray(self.explore(self.state.actor.params, jnp.asarray(envs.obs), self.seeds_arr, t))
                n_updates += oc.utd
            o, r, o2, m = envs.step(a)
            chunk[0][:, j], chunk[1][:, j], chunk[2][:, j, 0] = o, a, r
            chunk[3][:, j], chunk[4][:, j, 0] = o2, m
        return Batch(chunk[0], chunk[1], chunk[2][..., 0], chunk[3], chunk[4][..., 0]), n_updates

    def evaluate(self, n_episodes: int, step: int) -> loop.Evaluation:
        if self.info is not None:
            return loop.evaluate_seeds(self.learner, self.state, self.info, self.cfg, n_episodes, step)
        env = self.env
        return loop.evaluate_policies(
            self.learner,
            self.state,
            self.cfg.seeds,
            env.make,
            env.obs_fn,
            n_episodes,
            step,
            to_env_action=env.to_env_action,
        )

    def summary(self, outcome: loop.Outcome) -> dict[str, Any]:
        cfg, pretrain_steps = self.cfg, self.cfg.online.pretrain_steps
        env_steps = outcome.progress - max(outcome.start, pretrain_steps)  # in this segment
        out = {
            "env": self.env.env_id,
            "dataset": cfg.dataset if cfg.mode == "finetune" else None,
            "steps": outcome.progress - pretrain_steps,
            "pretrain_steps": pretrain_steps,
            "score": _score(outcome.evaluations, cfg.online.score_last),
            "env_steps_per_s": env_steps / outcome.elapsed if outcome.elapsed > 0 else math.nan,
            "updates_per_s": self.updates_done * len(cfg.seeds) / self.t_update if self.t_update > 0 else math.nan,
            "time_env_s": self.t_env,
            "time_update_s": self.t_update,
        }
        if self.info is not None:
            out["data"] = loop.dataset_record(self.info)
        return out

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()


def _train_rows(
    pending: list[dict[str, jax.Array]],
    envs: SeedEnvs,
    learner: Learner,
    state: LearnerState,
    env_step: int,
    t_env: float,
    t_update: float,
    k: int,
) -> list[dict[str, float]]:
    """One metrics row per seed: learner metrics averaged since the last row, finished episodes,
    priority statistics and the last chunk's timing split."""
    metrics = jax.device_get(pending)
    stats = jax.device_get(learner.replay_stats(state))
    rows = []
    for i in range(len(envs.envs)):
        row: dict[str, float] = {"env_step": float(env_step)}
        if metrics:
            row.update({key: float(np.mean([m[key][i] for m in metrics])) for key in metrics[0]})
        row.update({f"priority_{key}": float(v[i]) for key, v in stats.items()})
        done = envs.finished[i]
        if done:
            row["train_return"] = float(np.mean([d[0] for d in done]))
            row["train_length"] = float(np.mean([d[1] for d in done]))
            if envs.reports_success:
                row["train_success"] = float(np.mean([d[2] for d in done]))
            row["train_episodes"] = float(len(done))
        envs.finished[i] = []
        row["env_s_per_step"] = t_env / k
        row["update_s_per_step"] = t_update / k
        rows.append(row)
    return rows


def _score(evals_all: list[list[dict[str, Any]]], last: int) -> dict[str, Any] | None:
    """ROER's score: per seed the mean of the last `last` evaluations, then the mean over seeds.

    "per_seed" holds each seed's means ({"seed": s, key: mean}) for every score key that all of that seed's
    last evaluations carry; the top-level "mean_return" and "d4rl_score" are their means over seeds.
    """
    if not evals_all:
        return None
    tail = evals_all[-last:]
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for evals in tail:
        for e in evals:
            by_seed.setdefault(int(e["seed"]), []).append(e)
    per_seed = [
        {"seed": s}
        | {key: float(np.mean([e[key] for e in es])) for key in results.SCORE_KEYS if all(key in e for e in es)}
        for s, es in sorted(by_seed.items())
    ]
    out: dict[str, Any] = {"n_evaluations": float(len(tail))}
    for key in ("mean_return", "d4rl_score"):
        if all(key in p for p in per_seed):  # no d4rl_score where the env has no goal
            out[key] = float(np.mean([p[key] for p in per_seed]))
    out["per_seed"] = per_seed
    return out
