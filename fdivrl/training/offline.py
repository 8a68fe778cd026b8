"""`fdivrl train --mode offline`: dataset → fused, seed-vmapped learner → run directory.

The host only moves chunks of K fused gradient steps along, evaluates, logs and checkpoints.
Evaluation runs in the dataset's own eval env (minari's eval_env_spec: fixed start and goal, the
goal does not end the episode), which yields both labeled scores from one rollout: success at any
step gives the D4RL-style score (100 × success rate), the return gives minari's normalized score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fdivrl.analysis import activity
from fdivrl.config import TrainConfig
from fdivrl.core import divergences as D
from fdivrl.data import datasets as minari_data
from fdivrl.learning.learner import Learner, LearnerState, to_batch
from fdivrl.runs import loggers
from fdivrl.runs import rundir as runs
from fdivrl.training import evaluation

# resuming to a longer --steps is allowed; with cosine_actor_lr it moves the schedule, so only equal --steps
# reproduce an uninterrupted run number for number
RESUMABLE_CHANGES = ("steps", "learner.total_steps")
CHECKPOINT_EVERY_CHUNKS = 5


def default_out(cfg: TrainConfig) -> Path:
    seeds = f"s{cfg.seeds[0]}" + (f"x{len(cfg.seeds)}" if len(cfg.seeds) > 1 else "")
    return Path("runs") / cfg.dataset.replace("/", "_") / f"{cfg.per_type}-{cfg.preset}-{seeds}"


def dataset_record(info: minari_data.DatasetInfo) -> dict[str, Any]:
    """The dataset facts a run depends on (not where the file is or whether it came from cache)."""
    keys = (
        "dataset_id",
        "env_id",
        "n_episodes",
        "n_transitions",
        "obs_dim",
        "act_dim",
        "obs_keys",
        "reward_shift",
        "minari_version",
        "is_local_standin",
        "ref_min_score",
        "ref_max_score",
    )
    d = info.to_dict()
    return {k: d[k] for k in keys}


class Reporter:
    """Where progress goes; the CLI passes a rich progress bar, tests a silent one."""

    def start(self, total: int, done: int, description: str) -> None: ...

    def advance(self, step: int, updates_per_s: float, last_eval: str | None) -> None: ...

    def message(self, text: str) -> None: ...

    def stop(self) -> None: ...


def make_learner(cfg: TrainConfig, obs_dim: int, act_dim: int) -> Learner:
    return Learner(D.get(cfg.per_type), cfg.divergence, cfg.replay, cfg.learner, obs_dim, act_dim)


def seed_slice(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def evaluate_seeds(
    learner: Learner, state: LearnerState, info: minari_data.DatasetInfo, cfg: TrainConfig, n_episodes: int, step: int
) -> list[dict[str, Any]]:
    """One evaluation per seed in the dataset's eval env, deterministic actions."""
    return evaluate_policies(
        learner,
        state,
        cfg.seeds,
        lambda: minari_data.recover_eval_env(info),
        evaluation.dict_obs_fn(info.obs_keys) if info.obs_keys else None,
        n_episodes,
        step,
        ref=info.reference_scores,
    )


def evaluate_policies(
    learner: Learner,
    state: LearnerState,
    seeds: tuple[int, ...],
    make_env: Callable[[], Any],
    obs_fn: Callable[[Any], np.ndarray] | None,
    n_episodes: int,
    step: int,
    ref: tuple[float | None, float | None] = (None, None),
    to_env_action: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Each seed's deterministic policy for n_episodes in make_env(); one record per seed."""
    act = jax.jit(learner.act)
    scale = to_env_action or (lambda a: a)
    out = []
    for i, seed in enumerate(seeds):
        params = seed_slice(state.actor.params, i)

        def policy(obs: np.ndarray, params=params) -> np.ndarray:
            return scale(np.asarray(act(params, obs)))

        result = evaluation.evaluate(
            make_env,
            policy,
            n_episodes=n_episodes,
            # distinct, reproducible start states per (seed, step)
            seed=int(np.random.SeedSequence([seed, step]).generate_state(1)[0]),
            n_envs=min(10, n_episodes),
            obs_fn=obs_fn,
        )
        rec = result.to_dict(*ref, per_episode=False)
        rec["eval_seed"] = rec.pop("seed")
        out.append({"step": step, "seed": seed, **rec})
    return out


def summarize_evals(evals: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of the final evaluation, plus the per-seed records."""
    keys = ("mean_return", "success_rate", "d4rl_score", "normalized_score_x100")
    out: dict[str, Any] = {}
    for k in keys:
        vals = [e[k] for e in evals if k in e]
        if vals:
            out[k] = float(np.mean(vals))
    out["per_seed"] = evals
    return out


def last_evaluation(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the last evaluation in eval.jsonl (one per seed); [] when there is none."""
    steps = [r["step"] for r in records if "seed" in r]
    return [r for r in records if "seed" in r and r["step"] == max(steps)] if steps else []


def train_offline(
    cfg: TrainConfig,
    out: Path,
    resume: bool = False,
    reporter: Reporter | None = None,
    on_chunk: Callable[[int], None] | None = None,
    log: str = "none",
) -> dict[str, Any]:
    """Train `cfg.seeds` vmapped on `cfg.dataset` and write the run directory; returns summary.json."""
    reporter = reporter or Reporter()
    cfg.validate()
    transitions, info = minari_data.load(cfg.dataset, obs_keys=cfg.obs_keys, reward_shift=cfg.reward_shift)
    learner = make_learner(cfg, info.obs_dim, info.act_dim)
    record = {**cfg.to_dict(), "data": dataset_record(info)}
    with runs.RunDir.create(
        out, record, resume=resume, allowed_changes=RESUMABLE_CHANGES, seeds={"seeds": list(cfg.seeds)}
    ) as run:
        logger = loggers.make_logger(log, Path(out), record, name=Path(out).name)
        data = to_batch(transitions)
        del transitions
        state = learner.init_seeds(list(cfg.seeds), info.n_transitions)
        step = 0
        restored = run.restore(state) if resume else None
        if restored is not None:
            state, ckpt = restored
            step = ckpt.step  # restore() has cut the logs back to this step
            reporter.message(f"resumed {out} from step {step}")
        if step >= cfg.steps and run.is_finished():
            reporter.message(f"{out} is already finished at step {step}")
            return run.read_summary() or {}

        programs: dict[int, Callable] = {}
        last_eval: str | None = None
        evals: list[dict[str, Any]] = []
        reporter.start(cfg.steps, step, f"{cfg.per_type} on {cfg.dataset}")
        chunks_since_ckpt = 0
        last_ckpt = step if restored is not None else None
        t_run = time.perf_counter()
        steps_at_start = step
        while step < cfg.steps:
            n = min(cfg.chunk, cfg.steps - step)
            if n not in programs:
                programs[n] = learner.compiled_update(n)
            t0 = time.perf_counter()
            state, metrics = programs[n](state, data)
            metrics = jax.device_get(metrics)
            stats = jax.device_get(learner.replay_stats(state))
            step += n
            chunks_since_ckpt += 1
            for i, seed in enumerate(cfg.seeds):
                row = {k: float(v[i]) for k, v in metrics.items()}
                row.update({f"priority_{k}": float(v[i]) for k, v in stats.items()})
                runs.check_finite(row, step, last_ckpt)
                run.log_metrics({"step": step, "seed": seed, **row})
                logger.log(step, row, f"seed{seed}/train")
            rate = n / max(time.perf_counter() - t0, 1e-9)
            final = step >= cfg.steps
            if final or step % cfg.eval_every == 0:
                n_eps = cfg.final_eval_episodes if final else cfg.eval_episodes
                if n_eps > 0:
                    evals = evaluate_seeds(learner, state, info, cfg, n_eps, step)
                    for e in evals:
                        run.log_eval(e)
                        logger.log(step, {k: v for k, v in e.items() if isinstance(v, float)}, f"seed{e['seed']}/eval")
                    last_eval = f"{np.mean([e['d4rl_score'] for e in evals]):.1f}"
            if final or step % cfg.eval_every == 0 or chunks_since_ckpt >= CHECKPOINT_EVERY_CHUNKS:
                run.save_checkpoint(step, state)
                chunks_since_ckpt, last_ckpt = 0, step
            reporter.advance(step, rate, last_eval)
            if on_chunk is not None:
                on_chunk(step)
        reporter.stop()
        logger.close()
        elapsed = time.perf_counter() - t_run
        if not evals:  # resumed at (or past) the last evaluation: it is in eval.jsonl, cut back to the checkpoint
            evals = last_evaluation(run.read_evals())
            if evals:
                reporter.message(f"{out}: summary rebuilt from the evaluation at step {evals[0]['step']} in eval.jsonl")
        trained = step - steps_at_start
        summary = {
            "status": "finished",
            "per_type": cfg.per_type,
            "mode": cfg.mode,
            "dataset": cfg.dataset,
            "data": dataset_record(info),
            "steps": step,
            "seeds": list(cfg.seeds),
            "final_eval": summarize_evals(evals) if evals else None,
            # None: nothing was trained in this segment (a summary rebuilt from disk)
            "updates_per_s": (trained * len(cfg.seeds) / elapsed if elapsed > 0 else math.nan) if trained else None,
            "activity": activity.summarize(cfg.replay.prioritized, run.read_metrics()),
        }
        run.write_summary(summary)
        return summary
