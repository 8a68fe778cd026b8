"""`fdivrl train --mode offline`: dataset → fused, seed-vmapped learner → run directory.

The host only moves chunks of K fused gradient steps along; `loop.train` evaluates (in the dataset's
own eval env, see `loop.evaluate_seeds`), logs and checkpoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax

from fdivrl.analysis import values
from fdivrl.config import TrainConfig
from fdivrl.data import datasets as minari_data
from fdivrl.learning.learner import Batch, LearnerState, to_batch
from fdivrl.training import loop

CHECKPOINT_EVERY_CHUNKS = 5


class OfflineMode:
    """K fused gradient steps per chunk on the whole dataset; progress counts gradient steps."""

    headline = "d4rl_score"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.transitions, self.info = minari_data.load(
            cfg.dataset, obs_keys=cfg.obs_keys, reward_shift=cfg.reward_shift
        )
        rewards = self.transitions.rewards
        bounds = values.return_range(float(rewards.min()), float(rewards.max()), cfg.learner.discount)
        self.learner = loop.make_learner(cfg, self.info.obs_dim, self.info.act_dim, bounds)
        self.record = {**cfg.to_dict(), "data": loop.dataset_record(self.info)}
        self.identity = {"data_fingerprint": self.info.fingerprint}
        self.description = f"{cfg.per_type} on {cfg.dataset}"
        self.total = cfg.steps
        self.programs: dict[int, Callable] = {}
        self.chunks_since_ckpt = 0
        self.state: LearnerState
        self.data: Batch

    def init(self) -> LearnerState:
        self.data = to_batch(self.transitions)
        self.transitions = None  # the host copy is not needed once the data is on the device
        self.state = self.learner.init_seeds(list(self.cfg.seeds), self.info.n_transitions)
        return self.state

    def tree(self) -> LearnerState:
        return self.state

    def load(self, tree: LearnerState) -> None:
        self.state = tree

    def advance(self, progress: int) -> loop.Chunk:
        cfg = self.cfg
        n = min(cfg.chunk, cfg.steps - progress)
        if n not in self.programs:
            self.programs[n] = self.learner.compiled_update(n)
        t0 = time.perf_counter()
        self.state, metrics = self.programs[n](self.state, self.data)
        metrics = jax.device_get(metrics)
        stats = jax.device_get(self.learner.replay_stats(self.state))
        rate = n / max(time.perf_counter() - t0, 1e-9)
        step = progress + n
        rows = [
            {k: float(v[i]) for k, v in metrics.items()} | {f"priority_{k}": float(v[i]) for k, v in stats.items()}
            for i in range(len(cfg.seeds))
        ]
        evaluate = step >= cfg.steps or step % cfg.eval_every == 0
        self.chunks_since_ckpt += 1
        checkpoint = evaluate or self.chunks_since_ckpt >= CHECKPOINT_EVERY_CHUNKS
        if checkpoint:
            self.chunks_since_ckpt = 0
        return loop.Chunk(step, rows, rate, evaluate, checkpoint)

    def evaluate(self, n_episodes: int, step: int) -> loop.Evaluation:
        return loop.evaluate_seeds(self.learner, self.state, self.info, self.cfg, n_episodes, step)

    def summary(self, outcome: loop.Outcome) -> dict[str, Any]:
        trained = outcome.progress - outcome.start
        rate = trained * len(self.cfg.seeds) / outcome.elapsed if outcome.elapsed > 0 else math.nan
        return {
            "dataset": self.cfg.dataset,
            "data": loop.dataset_record(self.info),
            "steps": outcome.progress,
            # None: nothing was trained in this segment (a summary rebuilt from disk)
            "updates_per_s": rate if trained else None,
        }

    def close(self) -> None:
        pass
