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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from fdivrl.analysis import activity, results
from fdivrl.config import TrainConfig
from fdivrl.data import datasets as minari_data
from fdivrl.errors import ConfigError, DatasetError
from fdivrl.learning.learner import Batch, Learner, LearnerState, to_batch
from fdivrl.runs import loggers
from fdivrl.runs import rundir as runs
from fdivrl.training import evaluation
from fdivrl.training.offline import (
    RESUMABLE_CHANGES,
    Reporter,
    dataset_record,
    evaluate_policies,
    evaluate_seeds,
    make_learner,
    summarize_evals,
)

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return gym.make(env_id)

    return env_info(make, env_id, obs_keys)


def dataset_env_info(info: minari_data.DatasetInfo, obs_keys: tuple[str, ...]) -> EnvInfo:
    """The env the dataset was collected in (finetune trains there), checked against its spaces."""
    if info.env_spec is None:
        raise DatasetError(f"dataset '{info.dataset_id}' records no environment to train in")
    minari_data.register_robotics_envs()
    spec = minari_data.env_spec_from_json(info.env_spec)

    def make() -> gym.Env:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return gym.make(spec)

    env = env_info(make, spec.id, obs_keys)
    if (env.obs_dim, env.act_dim) != (info.obs_dim, info.act_dim):
        raise DatasetError(
            f"dataset '{info.dataset_id}' has obs/action dims ({info.obs_dim}, {info.act_dim}) but its env "
            f"{spec.id} gives ({env.obs_dim}, {env.act_dim})"
        )
    return env


def default_out(cfg: TrainConfig) -> Path:
    seeds = f"s{cfg.seeds[0]}" + (f"x{len(cfg.seeds)}" if len(cfg.seeds) > 1 else "")
    where = (cfg.env if cfg.mode == "online" else cfg.dataset) or "env"
    return Path("runs") / where.replace("/", "_") / f"{cfg.per_type}-{cfg.mode}-{cfg.preset}-{seeds}"


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


def train_online(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    reporter: Reporter | None = None,
    on_chunk: Callable[[int], None] | None = None,
    log: str = "none",
) -> dict[str, Any]:
    """Train `cfg.seeds` online (or finetune from a dataset) and write the run directory."""
    reporter = reporter or Reporter()
    cfg.validate()
    oc = cfg.online
    info = None
    if cfg.mode == "finetune":
        transitions, info = minari_data.load(cfg.dataset, obs_keys=cfg.obs_keys, reward_shift=cfg.reward_shift)
        env = dataset_env_info(info, cfg.obs_keys if info.obs_keys else ())
        n_data = info.n_transitions
    elif cfg.mode == "online":
        env = gym_env_info(cfg.env, cfg.obs_keys)
        transitions, n_data = None, 0
    else:
        raise ConfigError(f"train_online runs --mode online or finetune, not {cfg.mode!r}")
    capacity = oc.buffer_size  # fixed by the config, so a resumed run to more steps keeps its buffer
    learner = make_learner(cfg, env.obs_dim, env.act_dim)
    n_seeds = len(cfg.seeds)
    record = {**cfg.to_dict(), "env_id": env.env_id}
    if info is not None:
        record["data"] = dataset_record(info)
    with runs.RunDir.create(
        out, record, resume=resume, allowed_changes=RESUMABLE_CHANGES, seeds={"seeds": list(cfg.seeds)}
    ) as run:
        logger = loggers.make_logger(log, Path(out), record, name=Path(out).name)
        state = learner.init_seeds(list(cfg.seeds), n_data, capacity, online=True)
        if transitions is not None:
            data = _seed_stack(prefill(to_batch(transitions), capacity), n_seeds)
            del transitions
        else:
            data = _seed_stack(_empty_buffer(capacity, env.obs_dim, env.act_dim), n_seeds)
        # progress = pretrain steps + env steps; pretraining comes first
        total = oc.pretrain_steps + cfg.steps
        progress = 0
        restored = run.restore({"state": state, "data": data}) if resume else None
        if restored is not None:
            tree, ckpt = restored
            state, data, progress = tree["state"], tree["data"], ckpt.step
            reporter.message(f"resumed {out} from step {progress}")
        if progress >= total and run.is_finished():
            reporter.message(f"{out} is already finished at step {progress}")
            return run.read_summary() or {}
        last_ckpt = progress if restored is not None else None
        evals_all: list[list[dict[str, Any]]] = _evals_by_step(run.read_evals()) if restored is not None else []

        def evaluate(n_episodes: int, step: int) -> list[dict[str, Any]]:
            if info is not None:
                return evaluate_seeds(learner, state, info, cfg, n_episodes, step)
            return evaluate_policies(
                learner, state, cfg.seeds, env.make, env.obs_fn, n_episodes, step, to_env_action=env.to_env_action
            )

        def log_rows(step: int, rows: list[dict[str, float]]) -> None:
            for seed, row in zip(cfg.seeds, rows, strict=True):
                runs.check_finite(row, step, last_ckpt)
                run.log_metrics({"step": step, "seed": seed, **row})
                logger.log(step, row, f"seed{seed}/train")

        reporter.start(total, progress, f"{cfg.per_type} {cfg.mode} on {env.env_id}")
        t_run = time.perf_counter()

        # ---- optional offline pretraining on the prefilled buffer (finetune)
        if progress < oc.pretrain_steps:
            pretrain: dict[int, Callable] = {}
            while progress < oc.pretrain_steps:
                n = min(PRETRAIN_CHUNK, oc.pretrain_steps - progress)
                if n not in pretrain:
                    pretrain[n] = learner.compiled_update(n, shared_data=False)
                t0 = time.perf_counter()
                state, metrics = pretrain[n](state, data)
                metrics = jax.device_get(metrics)
                progress += n
                log_rows(
                    progress,
                    [{"pretrain": 1.0, **{k: float(v[i]) for k, v in metrics.items()}} for i in range(n_seeds)],
                )
                reporter.advance(progress, n / max(time.perf_counter() - t0, 1e-9), None)
            run.save_checkpoint(progress, {"state": state, "data": data})
            last_ckpt = progress

        # ---- the env loop
        env_step = progress - oc.pretrain_steps
        envs = SeedEnvs(env, cfg.seeds, reset_seed=env_step, reward_shift=cfg.reward_shift)
        explore = jax.jit(
            jax.vmap(
                lambda p, o, s, t: learner.explore(p, o[None], jax.random.fold_in(jax.random.PRNGKey(s), t))[0],
                in_axes=(0, 0, 0, None),
            )
        )
        seeds_arr = jnp.asarray(cfg.seeds, jnp.uint32)
        programs: dict[tuple[int, bool], Callable] = {}
        pending: list[dict[str, jax.Array]] = []
        updates_since_rebuild = 0
        last_eval: str | None = None
        t_env = t_update = 0.0
        updates_done = 0
        env_steps_at_start = env_step
        try:
            while env_step < cfg.steps:
                k = min(cfg.chunk, cfg.steps - env_step)
                t0 = time.perf_counter()
                chunk = [np.empty((n_seeds, k, d), np.float32) for d in (env.obs_dim, env.act_dim, 1, env.obs_dim, 1)]
                n_updates = 0
                for j in range(k):
                    t = env_step + j
                    if t < oc.start_steps:
                        a = envs.random_actions()
                    else:
                        a = np.asarray(explore(state.actor.params, jnp.asarray(envs.obs), seeds_arr, t))
                        n_updates += oc.utd
                    o, r, o2, m = envs.step(a)
                    chunk[0][:, j], chunk[1][:, j], chunk[2][:, j, 0] = o, a, r
                    chunk[3][:, j], chunk[4][:, j, 0] = o2, m
                t1 = time.perf_counter()
                new = Batch(chunk[0], chunk[1], chunk[2][..., 0], chunk[3], chunk[4][..., 0])
                ptr = jnp.asarray((n_data + env_step) % capacity, jnp.int32)
                updates_since_rebuild += n_updates
                rebuild = cfg.replay.mode == "sample" and updates_since_rebuild >= REBUILD_EVERY_UPDATES
                if rebuild:
                    updates_since_rebuild = 0
                key = (n_updates, rebuild)
                if key not in programs:
                    programs[key] = learner.compiled_online(n_updates, rebuild)
                state, data, metrics = programs[key](state, data, new, ptr)
                if metrics:
                    pending.append(metrics)
                jax.block_until_ready(state.actor.params)
                t2 = time.perf_counter()
                t_env, t_update = t_env + (t1 - t0), t_update + (t2 - t1)
                updates_done += n_updates
                env_step += k
                progress = oc.pretrain_steps + env_step
                final = env_step >= cfg.steps
                if final or env_step % oc.log_every < k:
                    rows = _train_rows(pending, envs, learner, state, n_seeds, env_step, t1 - t0, t2 - t1, k)
                    pending = []
                    log_rows(progress, rows)
                if final or env_step % cfg.eval_every < k:
                    n_eps = cfg.final_eval_episodes if final else cfg.eval_episodes
                    if n_eps > 0:
                        evals = evaluate(n_eps, progress)
                        evals_all.append(evals)
                        for e in evals:
                            run.log_eval(e)
                            logger.log(
                                progress,
                                {k_: v for k_, v in e.items() if isinstance(v, float)},
                                f"seed{e['seed']}/eval",
                            )
                        last_eval = f"{np.mean([e['mean_return'] for e in evals]):.1f}"
                if final or env_step % oc.checkpoint_every < k:
                    run.save_checkpoint(progress, {"state": state, "data": data})
                    last_ckpt = progress
                reporter.advance(progress, k / max(t2 - t0, 1e-9), last_eval)
                if on_chunk is not None:
                    on_chunk(progress)
        finally:
            envs.close()
        reporter.stop()
        logger.close()
        elapsed = time.perf_counter() - t_run
        done_steps = env_step - env_steps_at_start
        summary = {
            "status": "finished",
            "per_type": cfg.per_type,
            "mode": cfg.mode,
            "env": env.env_id,
            "dataset": cfg.dataset if cfg.mode == "finetune" else None,
            "steps": env_step,
            "pretrain_steps": oc.pretrain_steps,
            "seeds": list(cfg.seeds),
            "final_eval": summarize_evals(evals_all[-1]) if evals_all else None,
            "score": _score(evals_all, oc.score_last),
            "env_steps_per_s": done_steps / elapsed if elapsed > 0 else math.nan,
            "updates_per_s": updates_done * n_seeds / t_update if t_update > 0 else math.nan,
            "time_env_s": t_env,
            "time_update_s": t_update,
            "activity": activity.summarize(cfg.replay.prioritized, run.read_metrics()),
        }
        if info is not None:
            summary["data"] = dataset_record(info)
        run.write_summary(summary)
        return summary


def _train_rows(
    pending: list[dict[str, jax.Array]],
    envs: SeedEnvs,
    learner: Learner,
    state: LearnerState,
    n_seeds: int,
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
    for i in range(n_seeds):
        row: dict[str, float] = {"env_step": float(env_step)}
        if metrics:
            row.update({key: float(np.mean([m[key][i] for m in metrics])) for key in metrics[0]})
        row.update({f"priority_{key}": float(v[i]) for key, v in stats.items()})
        done = envs.finished[i]
        if done:
            row["train_return"] = float(np.mean([d[0] for d in done]))
            row["train_length"] = float(np.mean([d[1] for d in done]))
            row["train_success"] = float(np.mean([d[2] for d in done]))
            row["train_episodes"] = float(len(done))
        envs.finished[i] = []
        row["env_s_per_step"] = t_env / k
        row["update_s_per_step"] = t_update / k
        rows.append(row)
    return rows


def _evals_by_step(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    by_step: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_step.setdefault(int(r["step"]), []).append(r)
    return [by_step[s] for s in sorted(by_step)]


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
        out[key] = float(np.mean([p[key] for p in per_seed]))
    out["per_seed"] = per_seed
    return out
