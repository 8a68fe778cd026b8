"""Vectorized evaluation: exact episode counts, seeding, scores, and AntMaze goal termination."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from fdivrl.errors import ConfigError
from fdivrl.training.evaluation import EvalResult, antmaze_eval_env, dict_obs_fn, episode_seed, evaluate

ANTMAZE = "AntMaze_UMaze-v4"


def _pendulum() -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=30)


def _linear_policy(obs: np.ndarray) -> np.ndarray:
    """Row-independent and deterministic: what makes results independent of n_envs."""
    assert obs.dtype == np.float32 and obs.ndim == 2
    return np.clip(-0.7 * obs[:, 2:3] - 0.3 * obs[:, 1:2], -2.0, 2.0)


def _single_env_returns(n_episodes: int, seed: int) -> list[float]:
    env = _pendulum()
    returns = []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=episode_seed(seed, k))
        total, done = 0.0, False
        while not done:
            action = _linear_policy(obs[None].astype(np.float32))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


class _CountdownEnv(gym.Env):
    """Episode length 1 + seed % 5; reward 1 per step; success info on the last step when seed is even.

    Variable lengths make copies finish out of order, which is where autoreset bugs show.
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._seed = -1 if seed is None else seed
        self._left = 1 + int(self.np_random.integers(5)) if seed is None else 1 + seed % 5
        return np.array([self._left, 0.0], np.float32), {"success": True}  # reset info is ignored

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._left -= 1
        done = self._left == 0
        info = {"success": done and self._seed % 2 == 0}
        return np.array([self._left, 1.0], np.float32), 1.0, done, False, info


def _countdown_expected(n_episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    seeds = np.array([episode_seed(seed, k) for k in range(n_episodes)])
    return 1 + seeds % 5, seeds % 2 == 0


# --------------------------------------------------------------------------- cheap envs


def test_pendulum_matches_single_env_loop_and_counts_exactly() -> None:
    result = evaluate(_pendulum, _linear_policy, n_episodes=7, seed=11, n_envs=3)
    assert result.n_episodes == 7
    np.testing.assert_array_equal(result.lengths, np.full(7, 30))
    np.testing.assert_allclose(result.returns, _single_env_returns(7, 11), rtol=0, atol=1e-9)
    assert not result.successes.any()
    assert result.mean_return == pytest.approx(np.mean(result.returns))
    # Pendulum has no goal: its records say nothing about success rather than a measured-looking 0
    assert not result.reports_success
    record = result.to_dict()
    assert record["n_episodes"] == 7 and not {"success_rate", "d4rl_score", "successes"} & record.keys()


def test_deterministic_and_independent_of_n_envs() -> None:
    a = evaluate(_pendulum, _linear_policy, n_episodes=5, seed=3, n_envs=2)
    b = evaluate(_pendulum, _linear_policy, n_episodes=5, seed=3, n_envs=2)
    c = evaluate(_pendulum, _linear_policy, n_episodes=5, seed=3, n_envs=10)  # capped at 5 copies
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.returns, c.returns)
    d = evaluate(_pendulum, _linear_policy, n_episodes=5, seed=4, n_envs=2)
    assert not np.array_equal(a.returns, d.returns)
    # nearby seeds do not share start states (seed + k would share 4 of 5)
    assert not set(d.episode_seeds) & set(a.episode_seeds)


@pytest.mark.parametrize("n_envs", [1, 3, 4, 16])
def test_variable_length_episodes_counted_exactly(n_envs: int) -> None:
    calls: list[int] = []

    def policy(obs: np.ndarray) -> np.ndarray:
        calls.append(obs.shape[0])
        return np.zeros((obs.shape[0], 1), np.float32)

    result = evaluate(_CountdownEnv, policy, n_episodes=13, seed=5, n_envs=n_envs)
    lengths, successes = _countdown_expected(13, 5)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(result.returns, lengths.astype(float))  # no reward from reset steps
    np.testing.assert_array_equal(result.successes, successes)
    assert result.success_rate == pytest.approx(successes.mean())
    assert result.d4rl_score == pytest.approx(100 * successes.mean())
    assert result.reports_success and result.to_dict()["d4rl_score"] == pytest.approx(100 * successes.mean())
    assert set(calls) == {min(n_envs, 13)}  # always a full batch


def test_async_equals_sync() -> None:
    sync = evaluate(_CountdownEnv, lambda o: np.zeros((len(o), 1)), n_episodes=6, seed=2, n_envs=2)
    asyn = evaluate(
        _CountdownEnv, lambda o: np.zeros((len(o), 1)), n_episodes=6, seed=2, n_envs=2, vectorization="async"
    )
    np.testing.assert_array_equal(sync.returns, asyn.returns)
    np.testing.assert_array_equal(sync.successes, asyn.successes)


def test_max_episode_steps_caps_length() -> None:
    result = evaluate(_pendulum, _linear_policy, n_episodes=2, seed=0, n_envs=2, max_episode_steps=5)
    np.testing.assert_array_equal(result.lengths, [5, 5])


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        evaluate(_pendulum, _linear_policy, n_episodes=0, seed=0)
    with pytest.raises(ConfigError):
        evaluate(_pendulum, _linear_policy, n_episodes=1, seed=0, vectorization="threads")
    with pytest.raises(ValueError, match="actions"):
        evaluate(_pendulum, lambda o: np.zeros((1, 1)), n_episodes=2, seed=0, n_envs=2)


# --------------------------------------------------------------------------- scores


def test_score_arithmetic_on_fixed_numbers() -> None:
    result = EvalResult(
        returns=np.array([0.0, 1.0, 3.0, 4.0]),
        lengths=np.array([700, 300, 100, 50]),
        successes=np.array([False, True, True, True]),
        seed=0,
    )
    assert result.mean_return == 2.0
    assert result.success_rate == 0.75
    assert result.d4rl_score == 75.0
    # minari's get_normalized_score would give 0.25 for these numbers; we report ×100
    assert result.normalized_score(ref_min=1.0, ref_max=5.0) == pytest.approx(25.0)
    assert result.normalized_score(ref_min=2.0, ref_max=3.0) == pytest.approx(0.0)
    with pytest.raises(ConfigError):
        result.normalized_score(1.0, 1.0)
    d = result.to_dict(ref_min=1.0, ref_max=5.0)
    assert d["normalized_score_x100"] == pytest.approx(25.0) and d["d4rl_score"] == 75.0
    assert d["successes"] == [False, True, True, True] and d["lengths"] == [700, 300, 100, 50]
    json.dumps(d)
    assert "returns" not in result.to_dict(per_episode=False)


def test_dict_obs_fn() -> None:
    fn = dict_obs_fn(["observation", "desired_goal"])
    batch = {"observation": np.ones((3, 27)), "desired_goal": np.zeros((3, 2)), "achieved_goal": np.ones((3, 2))}
    out = fn(batch)
    assert out.shape == (3, 29) and out.dtype == np.float32
    with pytest.raises(ConfigError, match="desired_goal"):
        fn({"observation": np.ones((3, 27))})


# --------------------------------------------------------------------------- AntMaze


def _zero_policy(obs: np.ndarray) -> np.ndarray:
    return np.zeros((obs.shape[0], 8), np.float32)


def test_antmaze_zero_policy_never_succeeds() -> None:
    obs_fn = dict_obs_fn(["observation", "achieved_goal", "desired_goal"])
    result = evaluate(
        lambda: antmaze_eval_env(ANTMAZE),
        _zero_policy,
        n_episodes=3,
        seed=0,
        n_envs=2,
        obs_fn=obs_fn,
        max_episode_steps=20,
    )
    np.testing.assert_array_equal(result.lengths, [20, 20, 20])
    np.testing.assert_array_equal(result.returns, [0.0, 0.0, 0.0])
    assert result.success_rate == 0.0 and result.d4rl_score == 0.0


class _GoalAtStart(gym.Wrapper):
    """Moves the goal onto the ant after reset, so the first step reaches it."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.env.unwrapped.goal = obs["achieved_goal"].copy()
        obs["desired_goal"] = obs["achieved_goal"].copy()
        return obs, info


def test_antmaze_episode_ends_at_goal_with_success() -> None:
    env = antmaze_eval_env(ANTMAZE)
    assert env.unwrapped.continuing_task is False and env.spec.max_episode_steps == 700
    env.close()
    result = evaluate(
        lambda: _GoalAtStart(antmaze_eval_env(ANTMAZE)),
        _zero_policy,
        n_episodes=2,
        seed=0,
        n_envs=2,
        obs_fn=dict_obs_fn(["observation", "desired_goal"]),
        max_episode_steps=20,
    )
    np.testing.assert_array_equal(result.lengths, [1, 1])  # terminated at the goal, not truncated
    np.testing.assert_array_equal(result.returns, [1.0, 1.0])
    assert result.success_rate == 1.0 and result.d4rl_score == 100.0


def test_antmaze_eval_env_rejects_continuing_and_accepts_spec() -> None:
    with pytest.raises(ConfigError, match="continuing_task"):
        antmaze_eval_env(ANTMAZE, continuing_task=True)
    spec = gym.spec(ANTMAZE)
    env = antmaze_eval_env(spec, max_episode_steps=50)
    assert env.unwrapped.continuing_task is False and env.spec.max_episode_steps == 50
    env.close()


def test_antmaze_eval_env_from_minari_eval_spec(tiny_dataset_id: str) -> None:
    import minari

    spec = minari.load_dataset(tiny_dataset_id).storage.metadata["eval_env_spec"]  # JSON text
    env = antmaze_eval_env(spec)
    assert env.unwrapped.continuing_task is False and env.spec.max_episode_steps == 700
    env.close()
    result = evaluate(
        lambda: antmaze_eval_env(spec),
        _zero_policy,
        n_episodes=2,
        seed=1,
        n_envs=2,
        obs_fn=dict_obs_fn(["observation", "desired_goal"]),
        max_episode_steps=10,
    )
    np.testing.assert_array_equal(result.lengths, [10, 10])
    assert result.d4rl_score == 0.0


def test_making_an_antmaze_env_leaves_no_model_file_behind(tmp_path, monkeypatch) -> None:
    """gymnasium-robotics writes each maze's model to the temp directory and never deletes it; every
    AntMaze env fdivrl makes removes it, and the env still runs."""
    import tempfile

    from fdivrl.data.datasets import make_env

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for env in (antmaze_eval_env(ANTMAZE), make_env(ANTMAZE)):
        written = Path(env.unwrapped.tmp_xml_file_path)
        assert written.parent == tmp_path and not written.exists()
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
    assert list(tmp_path.iterdir()) == []
