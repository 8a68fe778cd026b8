"""Resolved training configuration and the presets it starts from.

A run's config is a frozen dataclass built once from (preset, dataset, per_type, CLI overrides),
validated as a whole, and written to the run directory, so every number of a run can be traced
back to one JSON file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fdivrl import divergences as D
from fdivrl.errors import ConfigError
from fdivrl.learner import LearnerConfig
from fdivrl.replay import ReplayConfig

DEFAULT_DATASET = "D4RL/antmaze/umaze-v1"
LOCAL_DEFAULT_DATASET = "fdivrl/antmaze/umaze-v1"
PRESETS = ("quick", "paper")

# XQL's offline AntMaze temperature β and Gumbel clip per task (reference.md §2), and ROER's
# AntMaze replay clips (reference.md §1: min_clip 10 on umaze, 1 elsewhere; max_clip 50).
ANTMAZE_TASKS: dict[str, dict[str, float]] = {
    "umaze": {"beta": 2.0, "gumbel_max_clip": 7.0, "min_clip": 10.0},
    "umaze-diverse": {"beta": 5.0, "gumbel_max_clip": 7.0, "min_clip": 1.0},
    "medium-play": {"beta": 0.8, "gumbel_max_clip": 5.0, "min_clip": 1.0},
    "medium-diverse": {"beta": 0.6, "gumbel_max_clip": 7.0, "min_clip": 1.0},
    "large-play": {"beta": 0.6, "gumbel_max_clip": 5.0, "min_clip": 1.0},
    "large-diverse": {"beta": 0.55, "gumbel_max_clip": 5.0, "min_clip": 1.0},
}


def antmaze_task(dataset_id: str) -> str | None:
    """'umaze' for D4RL/antmaze/umaze-v1 and for local stand-ins named the same way."""
    parts = dataset_id.split("/")
    if len(parts) >= 2 and parts[-2] == "antmaze":
        task = parts[-1].rsplit("-v", 1)[0]
        return task if task in ANTMAZE_TASKS else None
    return None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's numbers (plus where it writes them)."""

    per_type: str = "KL"
    mode: str = "offline"
    dataset: str = DEFAULT_DATASET
    env: str | None = None
    preset: str = "quick"
    seeds: tuple[int, ...] = (0,)
    steps: int = 50_000
    chunk: int = 1000
    """Gradient steps fused in one jitted call; logging and checkpoints happen at chunk ends."""
    eval_every: int = 20_000
    eval_episodes: int = 10
    final_eval_episodes: int = 50
    obs_keys: tuple[str, ...] = ("achieved_goal", "observation", "desired_goal")
    reward_shift: float = -1.0
    divergence: D.DivergenceConfig = field(default_factory=D.DivergenceConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def validate(self) -> TrainConfig:
        D.get(self.per_type)
        self.divergence.validate()
        self.replay.validate()
        self.learner.validate()
        if self.mode not in ("offline", "online", "finetune"):
            raise ConfigError(f"mode {self.mode!r} is not valid; choose one of: offline, online, finetune")
        if self.steps < 1 or self.chunk < 1 or self.eval_every < 1:
            raise ConfigError("steps, chunk and eval_every must be >= 1")
        if self.eval_episodes < 0 or self.final_eval_episodes < 0:
            raise ConfigError("eval episodes must be >= 0")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def preset_config(preset: str, dataset: str, per_type: str) -> TrainConfig:
    """The preset's settings for a dataset, before CLI overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not valid; choose one of: {', '.join(PRESETS)}")
    div = D.get(per_type)
    task = antmaze_task(dataset)
    task_hp = ANTMAZE_TASKS.get(task or "", {"beta": 1.0, "gumbel_max_clip": 7.0, "min_clip": 1.0})
    div_cfg = D.DivergenceConfig(beta=task_hp["beta"], gumbel_max_clip=task_hp["gumbel_max_clip"], max_clip=50.0)
    # ROER's weight floor is tuned for KL's e^z (and the KL-based baselines). For the others a floor
    # of 10 would pin every stored weight at 10 (the seed's JS weights never exceed 4x their mean):
    # their floor is their own lower clip, so the down-weighting they specify survives.
    kl_family = div is D.KL or isinstance(div, D.Baseline)
    div_cfg = dataclasses.replace(div_cfg, min_clip=task_hp["min_clip"] if kl_family else div.lower_clip(div_cfg))
    if preset == "paper":
        steps, chunk, eval_every, eval_eps, final_eps = 1_000_000, 1000, 100_000, 100, 100
    else:
        # ~110 updates/s on a 2-core CPU: about 8 minutes of updates plus evaluation
        steps, chunk, eval_every, eval_eps, final_eps = 50_000, 1000, 25_000, 10, 50
    # with_overrides derives the replay's clips and lower clip from the divergence config
    return with_overrides(
        TrainConfig(
            per_type=div.name,
            dataset=dataset,
            preset=preset,
            steps=steps,
            chunk=chunk,
            eval_every=eval_every,
            eval_episodes=eval_eps,
            final_eval_episodes=final_eps,
            reward_shift=-1.0 if task else 0.0,
            divergence=div_cfg,
            learner=LearnerConfig(total_steps=steps),
        )
    )


def with_overrides(
    cfg: TrainConfig,
    top: dict[str, Any] | None = None,
    divergence: dict[str, Any] | None = None,
    replay: dict[str, Any] | None = None,
    learner: dict[str, Any] | None = None,
) -> TrainConfig:
    """Apply overrides per section (None values mean 'keep the preset'); derived fields follow.

    The replay's clips mirror the divergence config, and its lower clip is the per_type's default
    unless `lower_clip` is given, so the two can never disagree in a written config.
    """

    def given(d: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (d or {}).items() if v is not None}

    top, div_o, rep_o, lrn_o = given(top), given(divergence), given(replay), given(learner)
    div_cfg = dataclasses.replace(cfg.divergence, **div_o)
    per_type = D.get(top.get("per_type", cfg.per_type))
    steps = top.get("steps", cfg.steps)
    replay_cfg = dataclasses.replace(
        cfg.replay,
        **rep_o,
        prioritized=per_type.prioritized,
        lower_clip=per_type.lower_clip(div_cfg),
        max_clip=div_cfg.max_clip,
        min_clip=div_cfg.min_clip,
    )
    learner_cfg = dataclasses.replace(cfg.learner, **lrn_o, total_steps=steps)
    top["per_type"] = per_type.name
    return dataclasses.replace(cfg, **top, divergence=div_cfg, replay=replay_cfg, learner=learner_cfg).validate()
