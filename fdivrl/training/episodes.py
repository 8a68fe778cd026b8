"""Episodes in a gymnasium vector env: the loop behind evaluation and the AntMaze data generator.

Design choices, and the gymnasium 1.x behaviour behind them:

* The vector env runs with ``autoreset_mode=DISABLED`` and copies are reset here, through
  ``reset(options={"reset_mask": ...})``, when their episode ends. In the default NEXT_STEP mode
  the step after a ``done`` is a reset step (reward 0, action ignored) that must not be counted,
  and the reset draws from the copy's own RNG, so which start states are run would depend on the
  number of copies and on finish order. Resetting by hand lets every episode have its own seed.
* All copies step together with one batched policy call per step. Once every counted episode is
  under way, copies whose episode ends run throw-away episodes (not counted) until the last
  counted one ends, so the policy always sees a full batch (a jitted policy compiles once) and no
  copy is stepped past the end of its episode.
* ``"async"`` runs one process per copy, started through a forkserver: forking a process that
  runs JAX threads can deadlock. ``make_env`` must then be picklable (cloudpickle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from fdivrl.errors import ConfigError

Obs = dict[str, np.ndarray] | np.ndarray

__all__ = ["EnvBatch", "EpisodeEnd", "Obs", "VectorStep", "info_flags", "make_vector_env", "run_episodes"]


def make_vector_env(make_env: Callable[[], gym.Env], n: int, vectorization: str) -> gym.vector.VectorEnv:
    """``n`` copies of ``make_env()`` without autoreset; ``vectorization`` is "sync" or "async"."""
    factories = [make_env] * n
    mode = gym.vector.AutoresetMode.DISABLED  # resets are the caller's: see the module docstring
    if vectorization == "sync":
        return gym.vector.SyncVectorEnv(factories, autoreset_mode=mode)
    if vectorization == "async":  # forkserver: forking a process that runs JAX threads can deadlock
        return gym.vector.AsyncVectorEnv(factories, autoreset_mode=mode, context="forkserver")
    raise ConfigError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")


def info_flags(infos: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    """Read a boolean per-env info entry of a vector env, honouring its ``_key`` mask."""
    if key not in infos:
        return np.zeros(n, dtype=bool)
    values = np.asarray(infos[key])
    mask = np.asarray(infos.get("_" + key, np.ones(n, dtype=bool)), dtype=bool)
    if values.dtype == object:
        values = np.array([bool(v) if v is not None else False for v in values], dtype=bool)
    return np.logical_and(values.astype(bool), mask)


def _where(mask: np.ndarray, new: Obs, old: Obs) -> Obs:
    """``new`` in the copies of ``mask``, ``old`` in the others (dict observations key by key)."""
    if isinstance(new, Mapping):
        return {key: _where(mask, value, old[key]) for key, value in new.items()}
    new = np.asarray(new)
    return np.where(mask.reshape(-1, *[1] * (new.ndim - 1)), new, old)


class EnvBatch:
    """A vector env stepped as a whole and reset copy by copy; it keeps each copy's current
    observation (``obs``, batched like the env's) and ``success`` info (reset or step), and whether
    the env has reported ``success`` at all (an env without a goal never does, and then a success
    rate of 0 would be a made-up number)."""

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        self.venv = venv
        self.n: int = venv.num_envs
        self.obs: Obs | None = None  # set by the first reset
        self.success = np.zeros(self.n, dtype=bool)
        self.reports_success = False

    def _read_success(self, infos: Mapping[str, Any]) -> np.ndarray:
        self.reports_success |= "success" in infos
        return info_flags(infos, "success", self.n)

    def reset(self, seeds: Sequence[int | None], mask: np.ndarray | None = None) -> None:
        """Reset the copies in ``mask`` (all of them: None), copy ``i`` with ``seeds[i]``."""
        if mask is None:
            obs, infos = self.venv.reset(seed=[None if s is None else int(s) for s in seeds])
            self.obs, self.success = obs, self._read_success(infos)
            return
        if self.obs is None:
            raise RuntimeError("reset all copies before resetting some of them")
        mask = np.array(mask, dtype=bool)  # gymnasium pops "reset_mask" from the options: a fresh array
        obs, infos = self.venv.reset(
            seed=[int(s) if m and s is not None else None for s, m in zip(seeds, mask, strict=True)],
            options={"reset_mask": mask.copy()},
        )
        self.obs = _where(mask, obs, self.obs)
        self.success = np.where(mask, self._read_success(infos), self.success)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step every copy; returns rewards (float64), terminated and truncated (bool) per copy."""
        obs, rewards, terminated, truncated, infos = self.venv.step(actions)
        self.obs, self.success = obs, self._read_success(infos)
        return np.asarray(rewards, dtype=np.float64), np.asarray(terminated, bool), np.asarray(truncated, bool)


@dataclass(frozen=True)
class EpisodeEnd:
    """A counted episode that ended."""

    index: int  # which episode: its position in run_episodes' ``seeds`` (episodes start in that order)
    env: int  # the copy that ran it
    ret: float  # undiscounted return (float64 sum of the rewards)
    length: int  # number of steps
    first_success: int  # 1-based step whose ``success`` info was first true (the reset's does not count); 0: never

    @property
    def success(self) -> bool:
        return self.first_success > 0


@dataclass(frozen=True)
class VectorStep:
    """One step of all copies, seen before the resets it leads to."""

    obs: Obs  # after the step; for a copy whose episode ended, the episode's last observation
    running: np.ndarray  # per copy, the counted episode it stepped (index into seeds); -1: a throw-away one
    ended: np.ndarray  # per copy: terminated or truncated at this step
    finished: tuple[EpisodeEnd, ...]  # the counted episodes that ended at this step, by copy


def run_episodes(
    batch: EnvBatch,
    policy: Callable[[Obs], np.ndarray],
    seeds: Sequence[int],
    *,
    idle_seed: int | None = None,
    on_start: Callable[[np.ndarray, Obs], None] | None = None,
) -> Iterator[VectorStep]:
    """Run ``len(seeds)`` counted episodes over the copies of ``batch``, yielding after every step.

    Episode ``k`` is the ``k``-th to start and is reset with ``seeds[k]``: all copies start
    episodes ``0 … n − 1``, then a copy whose episode ends starts the next one, or, once all are
    under way, a throw-away episode reset with ``idle_seed``. ``policy`` maps the batched
    observation to one action per copy; ``on_start(mask, obs)`` is called after each reset with
    the copies that started a counted episode. The last step yielded is the one in which the last
    counted episode ends; copies are not reset after it. Needs ``len(seeds) >= batch.n``.
    """
    n, total = batch.n, len(seeds)
    if total < n:
        raise ValueError(f"{total} episodes cannot keep {n} copies busy")
    running = np.arange(n, dtype=np.int64)
    next_episode, remaining = n, total
    batch.reset(seeds[:n])
    if on_start is not None:
        on_start(np.ones(n, dtype=bool), batch.obs)
    ep_return = np.zeros(n, dtype=np.float64)
    ep_length = np.zeros(n, dtype=np.int64)
    first_success = np.zeros(n, dtype=np.int64)
    while remaining:
        rewards, terminated, truncated = batch.step(policy(batch.obs))
        ep_return += rewards
        ep_length += 1
        first = (first_success == 0) & batch.success
        first_success[first] = ep_length[first]
        ended = terminated | truncated
        finished = tuple(
            EpisodeEnd(int(running[i]), int(i), float(ep_return[i]), int(ep_length[i]), int(first_success[i]))
            for i in np.flatnonzero(ended & (running >= 0))
        )
        remaining -= len(finished)
        yield VectorStep(batch.obs, running.copy(), ended, finished)
        if not remaining or not ended.any():
            continue
        started = np.zeros(n, dtype=bool)
        reset_seeds: list[int | None] = [None] * n
        for i in np.flatnonzero(ended):
            if next_episode < total:
                running[i], reset_seeds[i], started[i] = next_episode, seeds[next_episode], True
                next_episode += 1
            else:
                running[i], reset_seeds[i] = -1, idle_seed
        ep_return[ended], ep_length[ended], first_success[ended] = 0.0, 0, 0
        batch.reset(reset_seeds, ended)
        if on_start is not None and started.any():
            on_start(started, batch.obs)
