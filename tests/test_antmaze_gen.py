"""fdivrl.data.antmaze.generator: the local D4RL AntMaze stand-ins, written and read back like the real data."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest

from fdivrl.data import datasets as md
from fdivrl.data.antmaze import generator as antmaze_gen
from fdivrl.data.antmaze import mazes
from fdivrl.errors import ConfigError, DatasetError
from fdivrl.runs.lock import RunLock

GEN_ID = "fdivrl-test/antmaze-gen-umaze-v1"
D4RL_METADATA_KEYS = {
    "action_space",
    "algorithm_name",
    "author",
    "author_email",
    "code_permalink",
    "dataset_id",
    "dataset_size",
    "description",
    "env_spec",
    "eval_env_spec",
    "minari_version",
    "num_episodes_average_score",
    "observation_space",
    "ref_max_score",
    "ref_min_score",
    "requirements",
    "total_episodes",
    "total_steps",
}


class ScriptedWalker:
    """A deterministic stand-in walker that checks the interface it is called with."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, ant_obs: np.ndarray, goal_delta: np.ndarray) -> np.ndarray:
        assert ant_obs.dtype == np.float32 and ant_obs.shape[1:] == (27,)
        assert goal_delta.dtype == np.float32 and goal_delta.shape == (len(ant_obs), 2)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("walker crashed")
        phase = 0.3 * self.calls + np.arange(8)
        return np.tile(0.8 * np.sin(phase), (len(ant_obs), 1)) * np.tanh(goal_delta[:, :1])


@pytest.fixture(scope="module")
def generated(minari_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """3000 umaze steps over 2 envs with checkpoints every 2000 steps: time-limit and forced cuts."""
    summary = antmaze_gen.generate(
        "umaze", 3000, 7, ScriptedWalker(), GEN_ID, n_envs=2, ref_episodes=2, checkpoint_interval=2000
    )
    yield summary
    shutil.rmtree(minari_root / GEN_ID, ignore_errors=True)


@pytest.fixture
def no_reference_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the 2 x 700-step reference rollouts where a test is about something else."""
    monkeypatch.setattr(antmaze_gen, "_mean_return", lambda *args, **kwargs: 0.0)


def _real_env_spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    md.register_robotics_envs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id)
    spaces = (env.observation_space, env.action_space)
    env.close()
    return spaces


def test_action_noise_is_gaussian_and_clipped():
    rng = np.random.default_rng(0)
    noisy = antmaze_gen.add_action_noise(np.zeros((50_000, 8), dtype=np.float32), rng)
    assert noisy.dtype == np.float32 and noisy.shape == (50_000, 8)
    assert abs(noisy.mean()) < 0.002 and abs(noisy.std() - 0.2) < 0.002
    assert abs(np.mean(np.abs(noisy) > 0.2) - 0.3173) < 0.005  # P(|N(0, 1)| > 1)
    near_edge = antmaze_gen.add_action_noise(np.full((50_000, 8), 0.95), rng)
    assert near_edge.max() == 1.0 and near_edge.min() >= -1.0
    assert abs(np.mean(near_edge == 1.0) - 0.4013) < 0.005  # P(N(0, 0.2²) ≥ 0.05)
    assert np.all(antmaze_gen.add_action_noise(np.full((4, 8), 0.5), rng, sigma=0.0) == 0.5)


def test_generated_dataset_has_the_d4rl_layout(generated: dict[str, Any]):
    dataset = minari.load_dataset(GEN_ID)
    observation_space, action_space = _real_env_spaces("AntMaze_UMaze-v4")
    assert dataset.observation_space == observation_space and dataset.action_space == action_space
    assert set(dataset.observation_space.spaces) == {"achieved_goal", "observation", "desired_goal"}
    metadata = dataset.storage.metadata
    assert set(metadata) >= D4RL_METADATA_KEYS
    assert metadata["total_steps"] == 3000 and metadata["num_episodes_average_score"] == 2
    assert metadata["algorithm_name"] == "BFS+walker" and "NOT the real data" in metadata["description"]
    for key in ("env_spec", "eval_env_spec"):
        spec = json.loads(metadata[key])
        assert spec["id"] == "AntMaze_UMaze-v4" and spec["max_episode_steps"] == 700
        assert spec["kwargs"]["continuing_task"] is True and spec["kwargs"]["reset_target"] is False
        assert spec["kwargs"]["maze_map"][1][1] == "g" and spec["kwargs"]["maze_map"][3][1] == "r"

    episodes = list(dataset.iterate_episodes())
    # per env: 700 (time limit) + 300 (checkpoint cut) in the first 2000 steps, then 500 (end)
    assert sorted(len(e.rewards) for e in episodes) == [300, 300, 500, 500, 700, 700]
    with h5py.File(md.dataset_dir(GEN_ID) / "data" / "main_data.hdf5", "r") as file:
        assert sorted(int(file[f"episode_{i}"].attrs["seed"]) for i in range(6)) == list(range(7, 13))
    shape = (5, 5)
    for episode in episodes:
        steps = len(episode.rewards)
        assert not episode.terminations.any()
        assert episode.truncations[-1] and not episode.truncations[:-1].any()
        assert episode.actions.dtype == np.float32 and np.abs(episode.actions).max() <= 1.0
        obs, infos = episode.observations, episode.infos
        assert {k: v.shape for k, v in infos.items()} == {
            "success": (steps + 1,),
            "goal": (steps + 1, 2),
            "qpos": (steps + 1, 15),
            "qvel": (steps + 1, 14),
        }
        np.testing.assert_array_equal(infos["goal"], obs["desired_goal"])
        reached = np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"], axis=1) <= 0.45
        np.testing.assert_array_equal(infos["success"], reached)
        np.testing.assert_array_equal(episode.rewards, reached[1:].astype(float))
        assert tuple(mazes.xy_to_cell(obs["achieved_goal"][0], shape)) == (3, 1)  # plain umaze: fixed start
        assert np.all(mazes.xy_to_cell(obs["desired_goal"], shape) == (1, 1))  # ... and one fixed goal


def test_recorded_qpos_qvel_replay_the_simulation(generated: dict[str, Any]):
    dataset = minari.load_dataset(GEN_ID)
    md.register_robotics_envs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = dataset.recover_environment()
    env.reset(seed=0)
    ant = env.unwrapped.ant_env
    episode = dataset[0]
    for k in (0, 50, 199):
        ant.set_state(episode.infos["qpos"][k], episode.infos["qvel"][k])
        next_obs = ant.step(episode.actions[k])[0]
        np.testing.assert_allclose(next_obs[:2], episode.observations["achieved_goal"][k + 1], atol=1e-9)
        np.testing.assert_allclose(next_obs[2:], episode.observations["observation"][k + 1], atol=1e-9)
    env.close()


def test_generated_dataset_round_trips_through_fdivrl_loader(generated: dict[str, Any]):
    transitions, info = md.load(GEN_ID, cache=False)
    assert transitions.size == 3000 and transitions.observations.shape == (3000, 31)
    assert info.env_id == "AntMaze_UMaze-v4" and info.is_local_standin and info.n_episodes == 6
    assert info.ref_min_score == generated["ref_min_score"] and info.ref_max_score == generated["ref_max_score"]
    assert info.algorithm_name == "BFS+walker" and info.act_dim == 8
    assert np.all(transitions.masks == 1.0) and int(transitions.episode_ends.sum()) == 6
    assert set(np.unique(transitions.rewards)) <= {-1.0, 0.0}
    eval_env = md.recover_eval_env(info)
    obs, _ = eval_env.reset(seed=0)
    assert tuple(mazes.xy_to_cell(obs["achieved_goal"], (5, 5))) == (3, 1)
    assert tuple(mazes.xy_to_cell(obs["desired_goal"], (5, 5))) == (1, 1)
    eval_env.close()


def test_summary_and_visitation_png(generated: dict[str, Any]):
    assert generated["episodes"] == 6 and generated["steps"] == 3000 and generated["dataset_id"] == GEN_ID
    assert 0.0 <= generated["success_fraction"] <= 1.0 and generated["collect_steps_per_s"] > 0
    assert set(generated["return_quantiles"]) == {"min", "p10", "p25", "p50", "p75", "p90", "max"}
    assert np.isfinite(generated["ref_min_score"]) and np.isfinite(generated["ref_max_score"])
    png = Path(generated["visitation_png"])
    assert png == md.dataset_dir(GEN_ID) / "visitation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(generated)  # JSON-ready


def test_existing_id_is_refused_unless_overwrite(generated: dict[str, Any], no_reference_runs: None, tmp_path: Path):
    with pytest.raises(DatasetError, match="already exists") as error:
        antmaze_gen.generate("umaze", 10, 0, ScriptedWalker(), GEN_ID)
    assert "\n" not in str(error.value)
    assert minari.load_dataset(GEN_ID).total_steps == 3000  # untouched

    other = "fdivrl-test/antmaze-gen-overwrite-v1"
    antmaze_gen.generate("umaze", 30, 0, ScriptedWalker(), other, n_envs=1, plot_path=tmp_path / "a.png")
    summary = antmaze_gen.generate(
        "umaze", 20, 1, ScriptedWalker(), other, n_envs=1, overwrite=True, plot_path=tmp_path / "b.png"
    )
    assert minari.load_dataset(other).total_steps == 20 and summary["episodes"] == 1
    assert (tmp_path / "b.png").is_file()
    shutil.rmtree(md.dataset_dir(other))


def test_failed_run_leaves_no_partial_dataset(minari_root: Path, no_reference_runs: None):
    dataset_id = "fdivrl-test/antmaze-gen-crash-v1"
    with pytest.raises(RuntimeError, match="walker crashed"):
        antmaze_gen.generate(
            "umaze", 200, 0, ScriptedWalker(fail_after=120), dataset_id, n_envs=1, checkpoint_interval=50
        )
    assert not md.dataset_dir(dataset_id).exists()  # two checkpoints had been written


def test_dataset_appears_only_when_complete(minari_root: Path, no_reference_runs: None):
    """Checkpoints go to a staging root: the id is absent from the real root until the end."""
    dataset_id = "fdivrl-test/antmaze-gen-staged-v1"
    final = md.dataset_dir(dataset_id)
    seen: list[bool] = []

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "collect" and done > 60:  # the first 50-step checkpoint is on disk by now
            seen.append(final.exists())

    antmaze_gen.generate(
        "umaze", 150, 0, ScriptedWalker(), dataset_id, n_envs=1, checkpoint_interval=50, progress=progress
    )
    assert seen and not any(seen)
    assert minari.load_dataset(dataset_id).total_steps == 150
    assert final.is_dir() and dataset_id in md.local_datasets()
    staging = minari_root / antmaze_gen.STAGING_DIR
    assert [p.name for p in staging.iterdir() if p.is_dir()] == []  # nothing left behind
    shutil.rmtree(final)


def test_a_second_generator_of_the_same_id_is_refused(minari_root: Path, no_reference_runs: None):
    dataset_id = "fdivrl-test/antmaze-gen-busy-v1"
    staging = minari_root / antmaze_gen.STAGING_DIR
    staging.mkdir(exist_ok=True)
    busy = RunLock(staging / "fdivrl-test__antmaze-gen-busy-v1.lock")  # as another process would hold it
    with busy, pytest.raises(DatasetError, match="being generated by another fdivrl process") as err:
        antmaze_gen.generate("umaze", 10, 0, ScriptedWalker(), dataset_id, n_envs=1)
    assert "\n" not in str(err.value) and not md.dataset_dir(dataset_id).exists()


def test_overwrite_keeps_the_old_dataset_when_the_new_one_cannot_be_moved_in(
    minari_root: Path, no_reference_runs: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    dataset_id = "fdivrl-test/antmaze-gen-swap-v1"
    antmaze_gen.generate("umaze", 30, 0, ScriptedWalker(), dataset_id, n_envs=1, plot_path=tmp_path / "a.png")
    real_rename = os.rename

    def full_disk(src, dst):
        if Path(dst) == md.dataset_dir(dataset_id) and Path(src).name != ".replaced":
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", full_disk)
    with pytest.raises(DatasetError, match="nothing there was changed") as err:
        antmaze_gen.generate(
            "umaze", 20, 1, ScriptedWalker(), dataset_id, n_envs=1, overwrite=True, plot_path=tmp_path / "b.png"
        )
    monkeypatch.undo()
    assert "\n" not in str(err.value)
    assert minari.load_dataset(dataset_id).total_steps == 30  # the old one, intact
    assert minari.namespace.list_local_namespaces()  # namespace records came along with the first one
    shutil.rmtree(md.dataset_dir(dataset_id))


def test_checkpoints_smaller_than_the_vector_env_still_sum_to_steps(
    minari_root: Path, no_reference_runs: None, tmp_path: Path
):
    dataset_id = "fdivrl-test/antmaze-gen-small-chunks-v1"
    summary = antmaze_gen.generate(
        "large-play", 17, 0, ScriptedWalker(), dataset_id, n_envs=4, checkpoint_interval=5, plot_path=tmp_path / "p.png"
    )
    lengths = [len(e.rewards) for e in minari.load_dataset(dataset_id).iterate_episodes()]
    # chunks of 5, 5, 5, 2 steps over 4 envs: quotas (2, 1, 1, 1) three times, then (1, 1, 0, 0)
    assert sum(lengths) == 17 and sorted(lengths) == [1] * 11 + [2] * 3 and summary["episodes"] == 14
    shutil.rmtree(md.dataset_dir(dataset_id))


def test_sync_and_async_vector_envs_collect_the_same_data(minari_root: Path, no_reference_runs: None, tmp_path: Path):
    data = {}
    for vectorization in ("sync", "async"):
        dataset_id = f"fdivrl-test/antmaze-gen-{vectorization}-v1"
        antmaze_gen.generate(
            "medium-diverse",
            40,
            3,
            ScriptedWalker(),
            dataset_id,
            n_envs=2,
            vectorization=vectorization,
            plot_path=tmp_path / f"{vectorization}.png",
        )
        data[vectorization] = md.load(dataset_id, cache=False)[0]
        shutil.rmtree(md.dataset_dir(dataset_id))
    for sync_field, async_field in zip(data["sync"], data["async"], strict=True):
        np.testing.assert_array_equal(sync_field, async_field)


def test_bad_arguments_are_one_line_config_errors(minari_root: Path):
    walker = ScriptedWalker()
    cases = [
        ({"dataset_id": "D4RL/antmaze/umaze-v1"}, "D4RL/ namespace"),
        ({"dataset_id": "no-version"}, "malformed dataset id"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"n_envs": 0}, "n_envs must be at least 1"),
        ({"ref_episodes": 0}, "ref_episodes must be at least 1"),
        ({"task": "tiny"}, "unknown AntMaze task"),
        ({"vectorization": "threads"}, "vectorization must be"),
    ]
    for overrides, message in cases:
        kwargs = {"task": "umaze", "steps": 10, "seed": 0, "policy": walker, "dataset_id": "fdivrl-test/x-v1"}
        with pytest.raises(ConfigError, match=message):
            antmaze_gen.generate(**{**kwargs, **overrides})
    assert not md.dataset_dir("fdivrl-test/x-v1").exists()


# --------------------------------------------------------------------------------------------
# controller_success


def _still_walker(ant_obs: np.ndarray, goal_delta: np.ndarray) -> np.ndarray:
    return np.zeros((len(ant_obs), 8), dtype=np.float32)


def _short_umaze(steps: int) -> mazes.MazeTask:
    return dataclasses.replace(mazes.get_task("umaze"), max_episode_steps=steps)


class _ScriptedVectorEnv:
    """Stands in for the AntMaze vector env: the k-th episode started (in reset order) follows
    ``script[k]``: the steps whose ``success`` info is True (the ant is then put on the goal) and the
    step from which the torso is upside down. Episodes past the script (envs idling after the last
    counted episode started) report success at every step: they must not be counted. Like the real
    vector env without autoreset, it refuses to step an env whose episode ended."""

    START, GOAL = mazes.cell_to_xy(np.array([3, 1]), (5, 5)), mazes.cell_to_xy(np.array([1, 1]), (5, 5))

    def __init__(self, spec: Any, n: int, script: list[tuple[set[int], int | None]]) -> None:
        self.num_envs, self.limit, self.script = n, spec.max_episode_steps, script
        box = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.single_observation_space = gym.spaces.Dict(
            {"achieved_goal": box, "desired_goal": box, "observation": gym.spaces.Box(-np.inf, np.inf, (27,))}
        )
        self.episode = np.full(n, -1)
        self.t = np.zeros(n, dtype=np.int64)
        self.seeds: list[int] = []  # per episode, in reset order

    def _obs(self, success: np.ndarray, flipped: np.ndarray) -> dict[str, np.ndarray]:
        ant = np.zeros((self.num_envs, 27))
        ant[:, 1] = np.where(flipped, 0.0, 1.0)  # quaternion (w, x, y, z): upright or turned over about x
        ant[:, 2] = np.where(flipped, 1.0, 0.0)
        achieved = np.where(success[:, None], self.GOAL, self.START)
        return {"achieved_goal": achieved, "desired_goal": np.tile(self.GOAL, (self.num_envs, 1)), "observation": ant}

    def reset(
        self, seed: list[int | None], options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        mask = options["reset_mask"] if options else np.ones(self.num_envs, dtype=bool)
        for i in np.flatnonzero(mask):
            self.episode[i], self.t[i] = len(self.seeds), 0
            self.seeds.append(seed[i])
        none = np.zeros(self.num_envs, dtype=bool)
        return self._obs(none, none), {"success": none, "_success": np.ones(self.num_envs, dtype=bool)}

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        assert actions.shape == (self.num_envs, 8)
        assert np.all(self.t < self.limit), "stepped an env whose episode had ended"
        self.t += 1
        success, flipped = np.ones(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        for i, (t, k) in enumerate(zip(self.t, self.episode, strict=True)):
            if k < len(self.script):
                hits, flip = self.script[k]
                success[i], flipped[i] = t in hits, flip is not None and t >= flip
        infos = {"success": success, "_success": np.ones(self.num_envs, dtype=bool)}
        truncated = self.t >= self.limit
        return self._obs(success, flipped), success.astype(float), np.zeros_like(truncated), truncated, infos

    def close(self) -> None:
        pass


def test_controller_success_counts_first_success_steps_flips_and_returns(monkeypatch: pytest.MonkeyPatch):
    script = [({3, 4}, None), (set(), 5), ({10}, None), (set(range(7, 11)), 2)]  # 4 episodes of 10 steps
    envs: list[_ScriptedVectorEnv] = []
    monkeypatch.setattr(
        antmaze_gen,
        "_vector_env",
        lambda spec, n, vectorization: envs.append(_ScriptedVectorEnv(spec, n, script)) or envs[-1],
    )
    calls: list[tuple[str, int, int]] = []
    result = antmaze_gen.controller_success(
        _short_umaze(10), _still_walker, episodes=4, seed=3, n_envs=3, progress=lambda *call: calls.append(call)
    )
    # 3 envs start episodes 0-2; at step 10 env 0 starts episode 3, envs 1 and 2 idle (reporting success)
    assert result["steps_to_success"] == [3, None, 10, 7]
    assert result["successes"] == 3 and result["success_rate"] == 0.75
    assert result["mean_steps_to_success"] == pytest.approx(20 / 3)
    assert result["mean_return"] == pytest.approx((2 + 0 + 1 + 4) / 4)
    assert result["flipped"] == 2 and result["failed_flipped"] == 1
    distance = float(np.linalg.norm(_ScriptedVectorEnv.GOAL - _ScriptedVectorEnv.START))
    assert result["mean_final_distance"] == pytest.approx(distance / 2)
    assert result["mean_final_distance_failed"] == pytest.approx(distance)
    assert result["episodes"] == 4 and result["n_envs"] == 3 and result["max_episode_steps"] == 10
    assert {phase for phase, _, _ in calls} == {"ref-controller"} and calls[-1][1:] == (40, 40)
    (env,) = envs
    assert len(env.seeds) == 6 and env.seeds[4:] == [0, 0] and len(set(env.seeds[:4])) == 4  # idle resets: seed 0
    json.dumps(result)


def test_controller_success_of_a_still_ant_is_zero_and_deterministic(minari_root: Path):
    task = _short_umaze(40)
    result = antmaze_gen.controller_success(task, _still_walker, episodes=3, seed=5, n_envs=2)
    assert result["task"] == "umaze" and result["env_id"] == "AntMaze_UMaze-v4"
    assert result["eval_start"] == [3, 1] and result["eval_goal"] == [1, 1]
    assert result["success_rate"] == 0.0 and result["successes"] == 0 and result["mean_return"] == 0.0
    assert result["mean_steps_to_success"] is None and result["steps_to_success"] == [None] * 3
    assert result["flipped"] == 0
    assert 7.0 < result["mean_final_distance"] < 9.0  # start and goal cells are 8 apart, ±0.25 noise each
    assert antmaze_gen.controller_success(task, _still_walker, episodes=3, seed=5, n_envs=2) == result
    other = antmaze_gen.controller_success(task, _still_walker, episodes=3, seed=6, n_envs=2)
    assert other["mean_final_distance"] != result["mean_final_distance"]  # other reset noise


def test_controller_success_replays_the_ref_max_score_episodes(
    minari_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    recorded: list[Any] = []
    rollouts = antmaze_gen._rollouts
    monkeypatch.setattr(antmaze_gen, "_rollouts", lambda *args: recorded.append(rollouts(*args)) or recorded[-1])
    task, dataset_id = _short_umaze(60), "fdivrl-test/antmaze-gen-replay-v1"
    summary = antmaze_gen.generate(
        task, 10, 7, ScriptedWalker(), dataset_id, n_envs=2, ref_episodes=3, plot_path=tmp_path / "p.png"
    )
    shutil.rmtree(md.dataset_dir(dataset_id))
    _, reference = recorded  # ref-random, then ref-controller
    result = antmaze_gen.controller_success(task, ScriptedWalker(), episodes=3, seed=7, n_envs=2)
    assert result["mean_return"] == summary["ref_max_score"]
    # the returns are all 0 (the scripted walker never reaches the goal): the ants' end points tell
    assert result["mean_final_distance"] == float(reference.final_distance.mean())
    other = antmaze_gen.controller_success(task, ScriptedWalker(), episodes=3, seed=8, n_envs=2)
    assert other["mean_final_distance"] != result["mean_final_distance"]


def test_controller_success_bad_arguments_are_config_errors():
    for kwargs, message in (({"episodes": 0}, "episodes must be"), ({"n_envs": 0}, "n_envs must be")):
        with pytest.raises(ConfigError, match=message):
            antmaze_gen.controller_success("umaze", _still_walker, **kwargs)
    with pytest.raises(ConfigError, match="unknown AntMaze task"):
        antmaze_gen.controller_success("tiny", _still_walker)
