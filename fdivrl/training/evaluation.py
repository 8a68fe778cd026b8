"""Vectorized policy evaluation in gymnasium environments.

The episodes run in a vector env without autoreset (:mod:`fdivrl.training.episodes` says why);
what this module adds:

* Episode ``k`` is reset with :func:`episode_seed` ``(seed, k)``, whichever copy runs it, so for a
  policy that treats batch rows independently the per-episode numbers do not depend on ``n_envs``
  and equal those of a plain single-env loop (``env.reset(seed=episode_seed(seed, k))``).
* Exactly ``n_episodes`` episodes are counted, and they are episodes ``0 … n_episodes − 1`` by
  seed, not the first ``n_episodes`` to finish (that would favour short episodes). Copies with no
  episode left keep stepping a throw-away episode so the policy always sees a full batch (a jitted
  policy then compiles once); their results are discarded.
* Seeds are mixed through ``numpy.random.SeedSequence`` so evaluations with seeds 0 and 1 do not
  share 99 of 100 start states, as ``seed + k`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from fdivrl.errors import ConfigError
from fdivrl.training.episodes import EnvBatch, Obs, make_vector_env, run_episodes

Policy = Callable[[np.ndarray], Any]
ObsFn = Callable[[Obs], np.ndarray]

__all__ = [
    "EvalResult",
    "antmaze_eval_env",
    "dict_obs_fn",
    "episode_seed",
    "evaluate",
]


def episode_seed(seed: int, k: int) -> int:
    """The reset seed of episode ``k`` of an evaluation seeded with ``seed`` (a 31-bit int)."""
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(k),)).generate_state(1, np.uint32)
    return int(state[0] >> np.uint32(1))


def dict_obs_fn(keys: Sequence[str]) -> ObsFn:
    """An ``obs_fn`` that concatenates the named dict entries along the last axis, in that order.

    Works on a single observation and on a batched one (arrays with a leading env axis).
    """
    keys = tuple(keys)
    if not keys:
        raise ConfigError("dict_obs_fn needs at least one observation key")

    def obs_fn(obs: Obs) -> np.ndarray:
        if not isinstance(obs, Mapping):
            raise ConfigError(f"obs_fn expects a dict observation with keys {list(keys)}")
        missing = [k for k in keys if k not in obs]
        if missing:
            raise ConfigError(f"observation has no key(s) {missing}; it has {sorted(obs)}")
        return np.concatenate([np.asarray(obs[k], dtype=np.float32) for k in keys], axis=-1)

    return obs_fn


@dataclass(frozen=True)
class EvalResult:
    """Per-episode outcomes of one evaluation, in episode (seed) order.

    Two scores, labelled differently on purpose:

    * :attr:`d4rl_score` = 100 × success rate, comparable with published D4RL AntMaze numbers
      only when the env ended episodes at the goal (``continuing_task=False``, see
      :func:`antmaze_eval_env`);
    * :meth:`normalized_score` = 100 × (mean return − ref_min)/(ref_max − ref_min). Minari's own
      ``get_normalized_score`` returns the same ratio *without* the ×100.
    """

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray
    seed: int
    episode_seeds: tuple[int, ...] = field(default=())
    reports_success: bool = True
    """False when the env never put ``success`` in its info (MuJoCo locomotion): the records then
    carry no success rate or D4RL-style score rather than a 0 that looks measured."""

    @property
    def n_episodes(self) -> int:
        return int(self.returns.shape[0])

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.n_episodes else float("nan")

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns)) if self.n_episodes else float("nan")

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths)) if self.n_episodes else float("nan")

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.n_episodes else float("nan")

    @property
    def d4rl_score(self) -> float:
        """100 × success rate (the D4RL-style AntMaze score)."""
        return 100.0 * self.success_rate

    def normalized_score(self, ref_min: float, ref_max: float) -> float:
        """100 × (mean return − ref_min)/(ref_max − ref_min): minari's ratio, scaled ×100."""
        if not np.isfinite(ref_min) or not np.isfinite(ref_max) or ref_max == ref_min:
            raise ConfigError(
                f"cannot normalize: reference scores must be finite and differ (min={ref_min}, max={ref_max})"
            )
        return 100.0 * (self.mean_return - float(ref_min)) / (float(ref_max) - float(ref_min))

    def to_dict(
        self, ref_min: float | None = None, ref_max: float | None = None, per_episode: bool = True
    ) -> dict[str, Any]:
        """JSON-ready summary; adds ``normalized_score_x100`` when both reference scores are given."""
        out: dict[str, Any] = {
            "n_episodes": self.n_episodes,
            "seed": int(self.seed),
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "mean_length": self.mean_length,
        }
        if self.reports_success:
            out["success_rate"] = self.success_rate
            out["d4rl_score"] = self.d4rl_score
        if ref_min is not None and ref_max is not None:
            out["normalized_score_x100"] = self.normalized_score(ref_min, ref_max)
            out["ref_min_score"] = float(ref_min)
            out["ref_max_score"] = float(ref_max)
        if per_episode:
            out["returns"] = [float(r) for r in self.returns]
            out["lengths"] = [int(n) for n in self.lengths]
            if self.reports_success:
                out["successes"] = [bool(s) for s in self.successes]
        return out


def _with_time_limit(make_env: Callable[[], gym.Env], max_episode_steps: int | None) -> Callable[[], gym.Env]:
    if max_episode_steps is None:
        return make_env

    def make() -> gym.Env:
        return gym.wrappers.TimeLimit(make_env(), max_episode_steps=max_episode_steps)

    return make


def evaluate(
    make_env: Callable[[], gym.Env],
    policy: Policy,
    n_episodes: int,
    seed: int,
    n_envs: int = 10,
    obs_fn: ObsFn | None = None,
    max_episode_steps: int | None = None,
    vectorization: str = "sync",
) -> EvalResult:
    """Run ``n_episodes`` episodes of ``policy`` in ``n_envs`` copies of ``make_env()``.

    ``policy`` gets a float32 batch of shape ``(n_envs', obs_dim)`` with ``n_envs' =
    min(n_envs, n_episodes)`` and returns one action per row. ``obs_fn`` maps the *batched*
    observation (a dict of ``(n_envs', …)`` arrays for dict spaces) to that batch; dict
    observations need one (see :func:`dict_obs_fn`). ``max_episode_steps`` adds a ``TimeLimit``
    (the tighter of it and the env's own limit wins); without either, episodes that never end
    never return. ``vectorization`` is ``"sync"`` or ``"async"`` (one process per copy, started
    through a forkserver because forking a process that runs JAX threads can deadlock;
    ``make_env`` must then be picklable by cloudpickle). A policy or ``obs_fn`` that returns the
    wrong batch shape is a bug, so it raises ValueError/TypeError, not an FdivrlError.

    A step counts as a success when ``info["success"]`` is true; an episode succeeds when any of
    its steps does (the reset info is not counted). An env that never reports ``success`` gives a
    result with ``reports_success=False``.
    """
    if n_episodes < 1:
        raise ConfigError(f"n_episodes must be at least 1, got {n_episodes}")
    if n_envs < 1:
        raise ConfigError(f"n_envs must be at least 1, got {n_envs}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be at least 1, got {max_episode_steps}")
    n = min(n_envs, n_episodes)
    venv = make_vector_env(_with_time_limit(make_env, max_episode_steps), n, vectorization)
    seeds = [episode_seed(seed, k) for k in range(n_episodes)]
    returns = np.zeros(n_episodes, dtype=np.float64)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    successes = np.zeros(n_episodes, dtype=bool)
    action_space = venv.single_action_space

    def act(obs: Obs) -> np.ndarray:
        batch = obs_fn(obs) if obs_fn is not None else obs
        if isinstance(batch, Mapping):
            raise TypeError("dict observations need an obs_fn (e.g. dict_obs_fn(['observation', ...]))")
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 1 or batch.shape[0] != n:
            raise ValueError(f"obs_fn must return a ({n}, obs_dim) batch, got shape {batch.shape}")
        actions = np.asarray(policy(batch))
        if actions.shape[0] != n:
            raise ValueError(f"policy returned {actions.shape[0]} actions for a batch of {n}")
        if isinstance(action_space, gym.spaces.Box):
            actions = actions.astype(action_space.dtype, copy=False)
        return actions

    batch = EnvBatch(venv)
    try:
        for step in run_episodes(batch, act, seeds):
            for end in step.finished:
                returns[end.index], lengths[end.index], successes[end.index] = end.ret, end.length, end.success
    finally:
        venv.close()
    return EvalResult(
        returns, lengths, successes, seed=int(seed), episode_seeds=tuple(seeds), reports_success=batch.reports_success
    )


def antmaze_eval_env(env_id: str | gym.envs.registration.EnvSpec, **kwargs: Any) -> gym.Env:
    """An AntMaze env that ends the episode at the goal, for the D4RL-style success score.

    ``env_id`` is a registered id (``"AntMaze_UMaze-v4"``), an ``EnvSpec``, or an EnvSpec as JSON
    text, which is how minari stores a dataset's eval env
    (``dataset.storage.metadata["eval_env_spec"]``); the spec's kwargs — maze map, fixed
    start/goal — and episode limit are kept. ``continuing_task`` is forced to False and
    ``reset_target`` to False: with the default continuing task the ant keeps earning reward at
    the goal, so returns are not success rates.
    gymnasium's "v4 is out of date" warning is silenced: v4 is what the D4RL datasets were made in.
    """
    from fdivrl.data.datasets import make_env, register_robotics_envs

    register_robotics_envs()
    if kwargs.get("continuing_task", False):
        raise ConfigError("antmaze_eval_env ends episodes at the goal; continuing_task=True is not allowed")
    kwargs["continuing_task"] = False
    kwargs["reset_target"] = False
    if isinstance(env_id, str) and env_id.lstrip().startswith("{"):
        env_id = gym.envs.registration.EnvSpec.from_json(env_id)
    return make_env(env_id, **kwargs)
