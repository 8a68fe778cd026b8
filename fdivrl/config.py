"""Resolved training configuration and the presets it starts from.

A run's config is a frozen dataclass built once from (preset, dataset, per_type, CLI overrides),
validated as a whole, and written to the run directory, so every number of a run can be traced
back to one JSON file.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import typing
from dataclasses import dataclass, field
from typing import Any

from fdivrl import checks, suites
from fdivrl.checks import MAX_COUNT
from fdivrl.core import divergences as D
from fdivrl.errors import ConfigError
from fdivrl.learning.learner import NETWORKS, LearnerConfig
from fdivrl.learning.replay import MODES as REPLAY_MODES
from fdivrl.learning.replay import SCHEMES, ReplayConfig

DEFAULT_DATASET = "D4RL/antmaze/umaze-v1"
MODES = ("offline", "online", "finetune")
ONLINE_CHUNK = 10
"""Env steps between fused update calls online: the policy acts with parameters at most this many
updates old, and the host's per-call overhead is spread over as many updates."""
LOCAL_DEFAULT_DATASET = "fdivrl/antmaze/umaze-v1"
PRESETS = ("quick", "paper", "roer")
"""quick: minutes on 2 CPU cores; paper: the published protocol's length; roer: paper's length with
ROER's exact replay settings (its weight floors and EMA), where floors can pin every weight."""
# resuming to a longer --steps is allowed; with cosine_actor_lr it moves the schedule, so only equal --steps
# reproduce an uninterrupted run number for number
RESUMABLE_CHANGES = ("steps", "learner.total_steps")
ADDED_FIELDS: dict[str, Any] = {"learner.clip_targets": False}
"""Config fields added after runs were recorded, at the value those runs trained with: a stored
config.json without one is the same setting (resume and bench's finished-run check compare them so)."""
QUICK_OFFLINE_STEPS = 100_000
"""Long enough for KL (XQL) to learn the umaze stand-in: 50k steps gave 18% success (docs/presets.md)."""
QUICK_OFFLINE_EMA = 0.1
"""The avg scheme's λ_ema in a 100k-step offline run: an item of a 1M-transition dataset is visited
~26 times (100k × 256 / 1M), so λ_ema × visits ≈ 2.6, as ROER's 0.01 over a 1M-step run."""

# Per-task settings live in the suites (fdivrl/suites/*.json, with their sources): XQL's offline
# AntMaze β and Gumbel clip, ROER's AntMaze replay clips (min_clip 10 on umaze, 1 elsewhere; max_clip 50)
# and its finetune and MuJoCo settings. β is KL's; preset_config scales it by the per_type's beta_scale.
ANTMAZE_TASKS: dict[str, dict[str, float]] = suites.hyperparameters("antmaze", "offline")
ANTMAZE_FINETUNE: dict[str, dict[str, float]] = suites.hyperparameters("antmaze", "finetune")
MUJOCO_ENVS: dict[str, dict[str, float]] = suites.hyperparameters("mujoco", "online")


def antmaze_task(dataset_id: str) -> str | None:
    """'umaze' for D4RL/antmaze/umaze-v1 and for local stand-ins named the same way."""
    parts = dataset_id.split("/")
    if len(parts) >= 2 and parts[-2] == "antmaze":
        task = parts[-1].rsplit("-v", 1)[0]
        return task if task in ANTMAZE_TASKS else None
    return None


UNTUNED = {"beta": 1.0, "gumbel_max_clip": 7.0, "min_clip": 1.0, "max_clip": 50.0}
"""Settings for a dataset or env no suite tunes (a custom env such as fdivrl's walker)."""
FINETUNE_DEFAULT = {"beta": 0.4, "gumbel_max_clip": 7.0, "min_clip": 1.0, "max_clip": 50.0}
"""ROER's AntMaze finetune settings, for a dataset no suite tunes."""


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
            checks.count(key, getattr(self, key))
        for key in ("start_steps", "pretrain_steps"):
            checks.count(key, getattr(self, key), low=0)
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's numbers (plus where it writes them)."""

    per_type: str = "KL"
    """Replay priority, value loss and policy weight (fdivrl divergences lists them)."""
    mode: str = "offline"
    """offline (from a minari dataset), online (a gymnasium env) or finetune (dataset, then env)."""
    dataset: str | None = DEFAULT_DATASET
    """minari dataset id (offline, finetune), e.g. D4RL/antmaze/umaze-v1."""
    env: str | None = None
    """gymnasium env id (online), e.g. Hopper-v5."""
    preset: str = "quick"
    """quick (minutes on 2 CPU cores), paper (the published protocol's length) or roer (paper with
    ROER's exact weight floors and EMA)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds trained vmapped in one program."""
    steps: int = 50_000
    """Gradient steps (offline) or env steps (online, finetune)."""
    chunk: int = 1000
    """Steps fused in one jitted call (offline gradient steps, online env steps); logs and
    checkpoints happen at chunk ends."""
    eval_every: int = 20_000
    """Steps between evaluations."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    final_eval_episodes: int = 50
    """Episodes of the final evaluation (the run's score)."""
    obs_keys: tuple[str, ...] = ("achieved_goal", "observation", "desired_goal")
    reward_shift: float = -1.0
    divergence: D.DivergenceConfig = field(default_factory=D.DivergenceConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def validate(self) -> TrainConfig:
        """Every check of a run's settings, wherever they came from (CLI, config file, Python)."""
        D.get(self.per_type)
        checks.choice("mode", self.mode, MODES)
        checks.choice("preset", self.preset, PRESETS)
        for key in ("steps", "chunk", "eval_every", "eval_episodes", "final_eval_episodes"):
            checks.count(key, getattr(self, key))  # 0 episodes would finish a run without a score
        self.divergence.validate()
        self.replay.validate()
        self.learner.validate()
        self.online.validate()
        if self.mode == "online":
            if self.dataset:
                raise ConfigError("--mode online trains in --env; a --dataset belongs to --mode offline or finetune")
            if not self.env:
                raise ConfigError("--mode online needs --env <gymnasium id>, e.g. --env Hopper-v5")
        elif self.env:
            raise ConfigError(f"--env is for --mode online; --mode {self.mode} trains in the dataset's own env")
        if self.learner.clip_targets and self.mode != "offline":
            raise ConfigError(f"--clip-targets applies to --mode offline, not --mode {self.mode}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")
        if max(self.seeds) > MAX_COUNT:
            raise ConfigError(f"seeds must be <= {MAX_COUNT}, got {max(self.seeds)}")
        # the learner counts gradient updates in an int32: offline one per step, online utd per env step
        updates = self.steps if self.mode == "offline" else self.online.pretrain_steps + self.steps * self.online.utd
        if updates > MAX_COUNT:
            how = "--steps" if self.mode == "offline" else "--steps × --utd (+ --pretrain-steps)"
            raise ConfigError(
                f"{how} makes {updates} gradient updates, more than the learner's int32 step counter holds "
                f"({MAX_COUNT}); lower --steps or --utd"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """The config a run directory's config.json holds (its extra records, such as `data`, ignored)."""
        try:
            kwargs = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}
            for name, section in SECTIONS.items():
                if name != "top" and name in kwargs:
                    kwargs[name] = _tuples(section(**kwargs[name]))
            return _tuples(cls(**kwargs)).validate()
        except (TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"not an fdivrl run config ({exc})") from None


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
        hp = ANTMAZE_TASKS.get(task or "", UNTUNED)
        steps, chunk, eval_every, eval_eps, final_eps = (
            (1_000_000, 1000, 100_000, 100, 100) if paper else (QUICK_OFFLINE_STEPS, 1000, 25_000, 10, 50)
        )
        ema = 0.01 if paper else QUICK_OFFLINE_EMA
        learner = LearnerConfig(total_steps=steps)
    else:
        if mode == "online":
            hp = MUJOCO_ENVS.get(mujoco_env(env or "") or "", UNTUNED)
            steps, eval_every, eval_eps = (1_000_000, 5000, 10) if paper else (50_000, 5000, 10)
        else:  # finetune: ROER's AntMaze protocol, the whole dataset in the buffer first
            hp = ANTMAZE_FINETUNE.get(task or "", FINETUNE_DEFAULT)
            steps, eval_every, eval_eps = (2_000_000, 10_000, 100) if paper else (50_000, 10_000, 10)
            # ROER's code takes its 10k random steps in this protocol too
            online = OnlineConfig(buffer_size=2_000_000)
        chunk, final_eps = ONLINE_CHUNK, eval_eps
        learner = LearnerConfig(
            total_steps=steps,
            layer_norm=(),
            critic_loss="huber" if div.prioritized else "mse",
            grad_penalty=1.0,
        )
    div_cfg = D.DivergenceConfig(
        beta=hp["beta"] * div.beta_scale, gumbel_max_clip=hp["gumbel_max_clip"], max_clip=hp["max_clip"]
    )
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
    learner_cfg = dataclasses.replace(learner_cfg, layer_norm=in_order(learner_cfg.layer_norm, NETWORKS))
    top["per_type"] = per_type.name
    online_cfg = dataclasses.replace(cfg.online, **onl_o)
    return dataclasses.replace(
        cfg, **top, divergence=div_cfg, replay=replay_cfg, learner=learner_cfg, online=online_cfg
    ).validate()


def _tuples(cfg: Any) -> Any:
    """JSON has no tuples: lists read back from config.json become the tuples the fields hold."""
    lists = {f.name: tuple(v) for f in dataclasses.fields(cfg) if isinstance(v := getattr(cfg, f.name), list)}
    return dataclasses.replace(cfg, **lists)


# ---------------------------------------------------------------------------------- options

SECTIONS: dict[str, type] = {
    "top": TrainConfig,
    "divergence": D.DivergenceConfig,
    "replay": ReplayConfig,
    "learner": LearnerConfig,
    "online": OnlineConfig,
}


@dataclass(frozen=True)
class Option:
    """One `fdivrl train` option: the config fields it sets. Its help is the first field's
    docstring, its type that field's, so a setting is described in one place, the dataclass."""

    fields: tuple[str, ...]
    """Dotted paths ("steps", "divergence.beta"); several when one number feeds two fields."""
    name: str | None = None
    """The option's name when it is not the first field's."""
    modes: tuple[str, ...] = MODES
    """The modes it applies to; giving it in another mode is an error, not silently ignored."""
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.name or self.fields[0].rsplit(".", 1)[-1]

    def __post_init__(self) -> None:
        if self.many and not self.choices:
            raise ValueError(f"option {self.key}: a tuple field takes a comma list of choices, and it has none")

    @property
    def many(self) -> bool:
        """Whether it sets a tuple field, so it takes a comma list of its choices."""
        section, name = self._where()
        return typing.get_origin(_field_types(section)[name]) is tuple

    def field(self) -> dataclasses.Field:
        section, name = self._where()
        return {f.name: f for f in dataclasses.fields(section)}[name]

    def help(self) -> str:
        section, name = self._where()
        return " ".join(field_docs(section).get(name, "").split())

    def _where(self) -> tuple[type, str]:
        """The config dataclass and the name of the (first) field it sets."""
        section, _, name = self.fields[0].rpartition(".")
        return SECTIONS[section or "top"], name


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """A config dataclass's resolved field types (its annotations are strings under PEP 563)."""
    return typing.get_type_hints(cls)


ONLINE_MODES = ("online", "finetune")
TRAIN_OPTIONS: tuple[Option, ...] = (
    Option(("steps",)),
    Option(("learner.batch_size",)),
    Option(("divergence.beta",)),
    Option(("divergence.max_clip",)),
    Option(("divergence.min_clip",)),
    Option(("divergence.lower_clip",)),
    Option(("divergence.gumbel_max_clip",)),
    Option(("divergence.js_min_weight",)),
    Option(("divergence.js_max_weight",)),
    Option(("divergence.per_alpha", "replay.alpha"), name="per_alpha"),
    Option(("replay.mode",), name="priority_mode", choices=REPLAY_MODES),
    Option(("replay.scheme",), choices=SCHEMES),
    Option(("replay.ema",)),
    Option(("chunk",)),
    Option(("online.utd",), modes=ONLINE_MODES),
    Option(("online.start_steps",), modes=ONLINE_MODES),
    Option(("online.buffer_size",), modes=ONLINE_MODES),
    Option(("online.pretrain_steps",), modes=("finetune",)),
    Option(("learner.grad_penalty",)),
    Option(("learner.layer_norm",), choices=NETWORKS),
    Option(("learner.clip_targets",), modes=("offline",)),
    Option(("eval_every",)),
    Option(("eval_episodes", "final_eval_episodes"), name="eval_episodes"),
)
"""The overrides `fdivrl train` takes beside --per-type, --mode, --dataset/--env, --preset and seeds."""


def field_docs(cls: type) -> dict[str, str]:
    """A dataclass's attribute docstrings (the string under each field), read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def option_help(key: str) -> str:
    """An option's help, the docstring of the field it sets, plus where its default comes from."""
    option = {o.key: o for o in TRAIN_OPTIONS}[key]
    choices = f" One of: {', '.join(option.choices)}." if option.choices else ""
    if option.many:
        choices = f" A comma list of: {', '.join(option.choices)}; none for no network."
    modes = "" if option.modes == MODES else f" ({' and '.join(option.modes)} only)"
    default = "off (no preset turns it on)" if option.field().default is False else "the preset's"
    return f"{option.help()}{choices}{modes} Default: {default}."


def apply_options(cfg: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """`cfg` with the given options (option key -> value; None means not given) applied and validated.

    Choices match case-insensitively; an option outside its modes is refused in one line."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    by_key = {o.key: o for o in TRAIN_OPTIONS}
    for key, value in values.items():
        if value is None:
            continue
        option = by_key[key]
        if value is False and option.field().default is False:  # --no-<flag> asks for what every mode has
            continue
        if cfg.mode not in option.modes:
            modes = " and ".join(option.modes)
            raise ConfigError(f"{checks.flag(key)} applies to --mode {modes}, not --mode {cfg.mode}")
        if option.many:
            value = _choice_list(key, value, option.choices)
        elif option.choices:
            value = checks.canonical(value, option.choices)
            checks.choice(key, value, option.choices)
        for path in option.fields:
            section, _, name = path.rpartition(".")
            sections[section or "top"][name] = value
    return with_overrides(cfg, **sections)


def _choice_list(key: str, value: Any, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A comma list option's value ("critic,value", or a sequence from Python) as the field's tuple;
    "none" (or an empty sequence) is the empty tuple. Items match their choices case-insensitively;
    with_overrides then puts the set in the choices' order (in_order), so "value,critic" and
    "critic,value" make the same config."""
    if isinstance(value, str):
        items = [i.strip() for i in value.split(",") if i.strip()]
        if not items:
            raise ConfigError(f"{checks.flag(key)} takes a comma list of {', '.join(choices)}, or none")
    elif isinstance(value, (tuple, list)) and all(isinstance(i, str) for i in value):
        items = list(value)
    else:
        raise ConfigError(f"{checks.flag(key)} takes a comma list of {', '.join(choices)}, or none; got {value!r}")
    if [i.lower() for i in items] == ["none"]:
        return ()
    chosen = tuple(checks.canonical(i, choices) for i in items)
    for item in chosen:
        checks.choice(key, item, choices)
    return chosen


def in_order(items: Any, choices: tuple[str, ...]) -> Any:
    """A set of choices as the tuple in the choices' order, so one set is one config; anything else
    unchanged, for validation to refuse in its own words."""
    if isinstance(items, (tuple, list)) and set(items) <= set(choices):
        return tuple(c for c in choices if c in items)
    return items
