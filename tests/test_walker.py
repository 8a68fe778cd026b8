"""GoalReachAnt (the walker's training env) and the walker policy file."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdivrl.data.antmaze import walker
from fdivrl.data.datasets import register_robotics_envs
from fdivrl.errors import DatasetError
from fdivrl.learning.networks import Actor


@pytest.fixture
def env() -> walker.GoalReachAnt:
    e = walker.GoalReachAnt()
    e.reset(seed=0)
    yield e
    e.close()


def _place(env: walker.GoalReachAnt, qpos: np.ndarray, qvel: np.ndarray, goal_offset: tuple[float, float]) -> None:
    env.set_state(qpos, qvel)
    env.goal = env.xy + np.asarray(goal_offset)


def test_registered_env_has_flat_spaces_and_the_documented_layout():
    walker.register()
    walker.register()  # idempotent
    env = gym.make(walker.ENV_ID)
    assert env.spec.max_episode_steps == 1000
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (29,), np.float32)
    assert env.action_space.shape == (8,) and np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    obs, reward, _, truncated, step_info = env.step(env.action_space.sample())
    assert obs.shape == (29,) and isinstance(reward, float) and not truncated
    assert set(info) == set(step_info) == {"success", "goals_reached", "goal", "distance"}
    data = env.unwrapped._ant.data
    np.testing.assert_allclose(obs[:27], np.concatenate([data.qpos[2:], data.qvel]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(obs[27:], env.unwrapped.goal - data.qpos[:2], rtol=1e-6, atol=1e-6)
    again, _ = env.reset(seed=3)
    first, _ = gym.make(walker.ENV_ID).reset(seed=3)
    np.testing.assert_array_equal(again, first)
    env.close()


@pytest.mark.filterwarnings("ignore:.*out of date:DeprecationWarning")
def test_physics_match_antmaze_v4():
    """Same state and actions give the same ant observation as AntMaze_UMaze-v4 (away from its walls)."""
    register_robotics_envs()
    maze = gym.make("AntMaze_UMaze-v4").unwrapped
    maze.reset(seed=0)
    qpos, qvel = maze.data.qpos.copy(), maze.data.qvel.copy()
    qpos[:2] = maze.maze.cell_rowcol_to_xy(np.array([3, 2]))  # middle of a corridor: 2 units from any wall
    maze.ant_env.set_state(qpos, qvel)
    ours = walker.GoalReachAnt(reset_noise=0.0)
    ours.reset(seed=0)
    assert ours.dt == maze.ant_env.dt == 0.05
    ours.set_state(qpos, qvel)
    rng = np.random.default_rng(0)
    for _ in range(40):
        action = rng.uniform(-1, 1, 8)
        maze_obs, *_ = maze.step(action)
        obs, *_ = ours.step(action)
        np.testing.assert_allclose(obs[:27], maze_obs["observation"], rtol=1e-5, atol=1e-5)
    maze.close()
    ours.close()


def test_reaching_the_goal_draws_a_new_one_around_the_ant(env):
    qpos, qvel = env._ant.data.qpos.copy(), env._ant.data.qvel.copy()
    _place(env, qpos, qvel, (0.05, 0.0))
    old_goal = env.goal.copy()
    obs, _, terminated, _, info = env.step(np.zeros(8))
    assert info["success"] and info["goals_reached"] == 1 and not terminated
    assert not np.allclose(env.goal, old_goal)
    assert 0.5 <= np.linalg.norm(env.goal - env.xy) <= 6.0
    np.testing.assert_allclose(obs[27:], env.goal - env.xy, rtol=1e-6)
    _, _, _, _, info = env.step(np.zeros(8))
    assert not info["success"] and info["goals_reached"] == 1


def test_reward_is_velocity_toward_the_goal_plus_costs(env):
    qpos, qvel = env._ant.data.qpos.copy(), env._ant.data.qvel.copy()
    qvel[:2] = (2.0, 0.0)  # torso sliding along +x
    action = np.full(8, 0.5)
    rewards = {}
    for name, offset in {"toward": (3.0, 0.0), "away": (-3.0, 0.0)}.items():
        _place(env, qpos, qvel, offset)
        d_before = np.linalg.norm(env.goal - env.xy)
        _, rewards[name], terminated, _, info = env.step(action)
        assert not terminated
        expected = 10.0 * (d_before - info["distance"]) / env.dt - 0.5 * np.sum(action**2) + 1.0
        assert rewards[name] == pytest.approx(expected)
    assert rewards["toward"] > rewards["away"] + 10.0


def test_flipped_or_launched_ant_terminates(env):
    qpos, qvel = env._ant.data.qpos.copy(), np.zeros(env._ant.model.nv)
    flipped = qpos.copy()
    flipped[2], flipped[3:7] = 0.5, (0.0, 1.0, 0.0, 0.0)  # torso upside down, z inside the healthy range
    env.set_state(flipped, qvel)
    terminated = env.step(np.zeros(8))[2]
    assert terminated and not env.is_healthy()
    launched = qpos.copy()
    launched[2] = 1.6
    env.set_state(launched, qvel)
    assert env.step(np.zeros(8))[2]
    env.set_state(qpos, qvel)
    assert not env.step(np.zeros(8))[2]


def test_far_goals_keep_their_direction_but_not_their_length(env):
    _place(env, env._ant.data.qpos.copy(), env._ant.data.qvel.copy(), (30.0, -40.0))
    obs, *_ = env.step(np.zeros(8))
    assert np.linalg.norm(obs[27:]) == pytest.approx(walker.GOAL_CLIP, rel=1e-5)
    np.testing.assert_allclose(obs[27:] / walker.GOAL_CLIP, [0.6, -0.8], atol=2e-3)
    short = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(walker.clip_goal_delta(short), short)


def test_walker_file_round_trip_matches_the_actor(tmp_path):
    hidden, layer_norm = (32, 16), True
    actor = Actor(hidden, walker.ACT_DIM, layer_norm)
    params = actor.init(jax.random.key(1), jnp.zeros((1, walker.OBS_DIM)))["params"]
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), params)
    record = {"command": "fdivrl data walker --steps 10", "steps": 10, "seed": 0, "success": 0.5}
    path = walker.save_walker(tmp_path / "sub" / "w.npz", params, hidden, layer_norm, record)
    policy = walker.load_walker(path)
    assert policy.record == record and policy.hidden == hidden and policy.layer_norm is layer_norm

    rng = np.random.default_rng(0)
    ant_obs = rng.normal(size=(5, 27)).astype(np.float32)
    goal_delta = rng.normal(scale=5.0, size=(5, 2)).astype(np.float32)
    goal_delta[0] = (30.0, 0.0)  # beyond the clip
    actions = policy(ant_obs, goal_delta)
    expected = jnp.tanh(actor.apply({"params": params}, walker.walker_input(ant_obs, goal_delta))[0])
    assert actions.shape == (5, 8) and np.all(np.abs(actions) <= 1)
    np.testing.assert_allclose(actions, np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(policy(ant_obs, goal_delta), actions)

    with pytest.raises(ValueError, match="do not fit"):
        walker.save_walker(tmp_path / "bad.npz", params, (64, 64), layer_norm, record)


def test_missing_or_broken_walker_file_is_a_one_line_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="fdivrl data walker") as missing:
        walker.load_walker(tmp_path / "nope.npz")
    assert "\n" not in str(missing.value)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable walker file"):
        walker.load_walker(broken)


def test_shipped_walker_loads_says_how_it_was_made_and_runs_batched():
    policy = walker.load_walker()  # the package's own file
    record = policy.record
    assert record["command"].startswith("fdivrl data walker") and record["seed"] == 0
    assert record["checkpoint_step"] == record["steps"]  # the run's last checkpoint, not a picked one
    assert set(record["measured"]) == {"umaze", "medium-play"}
    for measured in record["measured"].values():
        assert measured["episodes"] >= 50 and measured["meets_bar"] == (measured["success_rate"] >= measured["bar"])
    rng = np.random.default_rng(0)
    ant_obs = rng.normal(size=(16, walker.ANT_OBS_DIM)).astype(np.float32)
    actions = policy(ant_obs, rng.normal(scale=4.0, size=(16, 2)).astype(np.float32))
    assert actions.shape == (16, walker.ACT_DIM) and np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1)
    assert len({a.tobytes() for a in actions}) == 16  # one call, sixteen different inputs and answers
