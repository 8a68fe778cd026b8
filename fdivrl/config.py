"""Resolved training configuration and the presets it starts from.

A run's config is a frozen dataclass built once from (preset, dataset, per_type, CLI overrides),
validated as a whole, and written to the run directory, so every number of a run can be traced
back to one JSON file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError
from fdivrl.learning.learner import LearnerConfig
from fdivrl.learning.replay import ReplayConfig

DEFAULT_DATASET = "D4RL/antmaze/umaze-v1"
MAX_COUNT = 2**31 - 1
"""Largest step, update, episode or seed count an option takes: the learner's step counter and the
replay's indices are int32, so a larger count would wrap around mid-run instead of failing up front."""
ONLINE_CHUNK = 10
"""Env steps between fused update calls online: the policy acts with parameters at most this many
updates old, and the host's per-call overhead is spread over as many updates."""
LOCAL_DEFAULT_DATASET = "fdivrl/antmaze/umaze-v1"
PRESETS = ("quick", "paper", "roer")
"""quick: minutes on 2 CPU cores; paper: the published protocol's length; roer: paper's length with
ROER's exact replay settings (its weight floors and EMA), where floors can pin every weight."""
QUICK_OFFLINE_STEPS = 100_000
"""Long enough for KL (XQL) to learn the umaze stand-in: 50k steps gave 18% success (docs/presets.md)."""
QUICK_OFFLINE_EMA = 0.1
"""The avg scheme's λ_ema in a 100k-step offline run: an item of a 1M-transition dataset is visited
~26 times (100k × 256 / 1M), so λ_ema × visits ≈ 2.6, as ROER's 0.01 over a 1M-step run."""

# XQL's offline AntMaze temperature β and Gumbel clip per task (docs/references.md §2), and ROER's
# AntMaze replay clips (docs/references.md §1: min_clip 10 on umaze, 1 elsewhere; max_clip 50).
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


# ROER's online per-env settings (docs/references.md §1, Table 5/6); gumbel clip 7 and λ_ema 0.01 everywhere.
MUJOCO_ENVS: dict[str, dict[str, float]] = {
    "Ant": {"beta": 1.0, "min_clip": 10.0, "max_clip": 100.0},
    "HalfCheetah": {"beta": 4.0, "min_clip": 10.0, "max_clip": 50.0},
    "Hopper": {"beta": 0.4, "min_clip": 10.0, "max_clip": 100.0},
    "Humanoid": {"beta": 4.0, "min_clip": 10.0, "max_clip": 50.0},
    "Walker2d": {"beta": 4.0, "min_clip": 10.0, "max_clip": 50.0},
}
ONLINE_DEFAULT = {"beta": 1.0, "min_clip": 1.0, "max_clip": 50.0}
"""Settings for an env ROER did not tune (a custom env such as fdivrl's walker)."""
ANTMAZE_ONLINE = {"beta": 0.4, "max_clip": 50.0}
"""ROER's AntMaze finetune temperature and cap; min_clip per task as offline (10 umaze, 1 others)."""


def mujoco_env(env_id: str) -> str | None:
    """'Hopper' for Hopper-v5 (any version), None for envs without a ROER preset."""
    name = env_id.split("/")[-1].rsplit("-v", 1)[0]
    return name if name in MUJOCO_ENVS else None


@dataclass(frozen=True)
class OnlineConfig:
    """The env loop around the learner (online and finetune modes)."""

    start_steps: int = 10_000
    """Uniformly random actions for the first env steps (ROER's start_training)."""
    utd: int = 1
    """Gradient updates per env step."""
    buffer_size: int = 1_000_000
    """Ring buffer capacity per seed (finetune: at least the dataset's size)."""
    pretrain_steps: int = 0
    """Finetune: offline gradient steps on the prefilled buffer before the env loop."""
    log_every: int = 1000
    """Env steps between metrics.jsonl records."""
    checkpoint_every: int = 50_000
    """Env steps between checkpoints (a checkpoint holds the whole buffer)."""
    score_last: int = 10
    """The run's score is the mean of its last `score_last` evaluations (ROER's protocol)."""

    def validate(self) -> OnlineConfig:
        for key in ("utd", "buffer_size", "log_every", "checkpoint_every", "score_last"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.start_steps < 0 or self.pretrain_steps < 0:
            raise ConfigError("start_steps and pretrain_steps must be >= 0")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's numbers (plus where it writes them)."""

    per_type: str = "KL"
    mode: str = "offline"
    dataset: str | None = DEFAULT_DATASET
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
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def validate(self) -> TrainConfig:
        D.get(self.per_type)
        self.divergence.validate()
        self.replay.validate()
        self.learner.validate()
        self.online.validate()
        if self.mode == "online" and not self.env:
            raise ConfigError("--mode online needs --env <gymnasium id>, e.g. --env Hopper-v5")
        if self.mode not in ("offline", "online", "finetune"):
            raise ConfigError(f"mode {self.mode!r} is not valid; choose one of: offline, online, finetune")
        if self.steps < 1 or self.chunk < 1 or self.eval_every < 1:
            raise ConfigError("steps, chunk and eval_every must be >= 1")
        if self.eval_episodes < 1 or self.final_eval_episodes < 1:
            raise ConfigError("eval episodes must be >= 1 (a run with no evaluation has no score)")
        if self.steps > MAX_COUNT:
            raise ConfigError(f"steps must be <= {MAX_COUNT} (the learner counts updates in int32), got {self.steps}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def uses_roer_floor(div: D.Divergence, preset: str) -> bool:
    """ROER's min_clip floor applies to KL's e^z weights under the roer preset only.

    With ROER's 10 on umaze and MuJoCo every stored weight sits at the floor unless δ/β > log 10
    (docs/presets.md), so quick and paper floor each per_type at its own lower clip instead; PER
    has no floor in ROER's code."""
    return preset == "roer" and div is D.KL


def preset_config(
    preset: str, dataset: str | None, per_type: str, mode: str = "offline", env: str | None = None
) -> TrainConfig:
    """The preset's settings for a (mode, dataset or env), before CLI overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not valid; choose one of: {', '.join(PRESETS)}")
    if mode not in ("offline", "online", "finetune"):
        raise ConfigError(f"mode {mode!r} is not valid; choose one of: offline, online, finetune")
    div = D.get(per_type)
    task = antmaze_task(dataset or "")
    paper = preset != "quick"
    online = OnlineConfig()
    ema = 0.01
    if mode == "offline":
        task_hp = ANTMAZE_TASKS.get(task or "", {"beta": 1.0, "gumbel_max_clip": 7.0, "min_clip": 1.0})
        hp = {**task_hp, "max_clip": 50.0}
        steps, chunk, eval_every, eval_eps, final_eps = (
            (1_000_000, 1000, 100_000, 100, 100) if paper else (QUICK_OFFLINE_STEPS, 1000, 25_000, 10, 50)
        )
        ema = 0.01 if paper else QUICK_OFFLINE_EMA
        learner = LearnerConfig(total_steps=steps)
    else:
        if mode == "online":
            hp = MUJOCO_ENVS.get(mujoco_env(env or "") or "", ONLINE_DEFAULT)
            steps, eval_every, eval_eps = (1_000_000, 5000, 10) if paper else (50_000, 5000, 10)
        else:  # finetune: ROER's AntMaze protocol, the whole dataset in the buffer first
            hp = {**ANTMAZE_ONLINE, "min_clip": ANTMAZE_TASKS.get(task or "", {"min_clip": 1.0})["min_clip"]}
            steps, eval_every, eval_eps = (2_000_000, 10_000, 100) if paper else (50_000, 10_000, 10)
            # ROER's code takes its 10k random steps in this protocol too
            online = OnlineConfig(buffer_size=2_000_000)
        hp = {"gumbel_max_clip": 7.0, **hp}
        chunk, final_eps = ONLINE_CHUNK, eval_eps
        learner = LearnerConfig(
            total_steps=steps,
            layer_norm=(),
            critic_loss="huber" if div.prioritized else "mse",
            grad_penalty=1.0,
        )
    div_cfg = D.DivergenceConfig(beta=hp["beta"], gumbel_max_clip=hp["gumbel_max_clip"], max_clip=hp["max_clip"])
    # Every per_type's floor is its own lower clip, so the down-weighting it specifies survives and an
    # average item sits where new items start; ROER's floor only under the roer preset.
    div_cfg = dataclasses.replace(
        div_cfg, min_clip=hp["min_clip"] if uses_roer_floor(div, preset) else div.lower_clip(div_cfg)
    )
    # PER sets each priority to its fresh value (ROER's code: no EMA); the f-divergences average
    replay_cfg = ReplayConfig(ema=ema, scheme="direct" if div.critic_priority else "avg")
    # with_overrides derives the replay's clips and lower clip from the divergence config
    return with_overrides(
        TrainConfig(
            per_type=div.name,
            mode=mode,
            dataset=dataset if mode != "online" else None,
            env=env if mode == "online" else None,
            preset=preset,
            steps=steps,
            chunk=chunk,
            eval_every=eval_every,
            eval_episodes=eval_eps,
            final_eval_episodes=final_eps,
            # r − 1 on any AntMaze data (IQL/XQL/ROER), tuned task or not
            reward_shift=-1.0 if "antmaze" in (dataset or "").lower() else 0.0,
            divergence=div_cfg,
            replay=replay_cfg,
            learner=learner,
            online=online,
        )
    )


def with_overrides(
    cfg: TrainConfig,
    top: dict[str, Any] | None = None,
    divergence: dict[str, Any] | None = None,
    replay: dict[str, Any] | None = None,
    learner: dict[str, Any] | None = None,
    online: dict[str, Any] | None = None,
) -> TrainConfig:
    """Apply overrides per section (None values mean 'keep the preset'); derived fields follow.

    The replay's clips mirror the divergence config, and its lower clip is the per_type's default
    unless `lower_clip` is given, so the two can never disagree in a written config.
    """

    def given(d: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (d or {}).items() if v is not None}

    top, div_o, rep_o, lrn_o, onl_o = given(top), given(divergence), given(replay), given(learner), given(online)
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
    online_cfg = dataclasses.replace(cfg.online, **onl_o)
    return dataclasses.replace(
        cfg, **top, divergence=div_cfg, replay=replay_cfg, learner=learner_cfg, online=online_cfg
    ).validate()
