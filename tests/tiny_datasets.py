"""Write tiny minari datasets for tests (remote datasets cannot be downloaded here).

All helpers write under the current minari root (``$MINARI_DATASETS_PATH``; the ``minari_root``
fixture in ``tests/conftest.py`` points it at a temporary directory) and return the dataset
directory. They use minari's own ``create_dataset_from_buffers`` so the files are exactly what
minari 0.5.4 writes. Infos are reduced to ``success``: AntMaze's reset and step infos have
different keys, which minari cannot store side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

TINY_ANTMAZE_ENV_ID = "AntMaze_UMaze-v4"
_META = {
    "algorithm_name": "fdivrl-test-random-actions",
    "author": "fdivrl tests",
    "author_email": "tests@fdivrl.invalid",
    "code_permalink": "https://fdivrl.invalid/tests/tiny_datasets.py",
}


def _root_path(dataset_id: str) -> Path:
    from minari.storage import get_dataset_path

    return Path(get_dataset_path(dataset_id))


def _prepare(dataset_id: str, overwrite: bool) -> Path:
    path = _root_path(dataset_id)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"dataset {dataset_id} already exists at {path}")
        shutil.rmtree(path)
    return path


def _register_robotics() -> None:
    # gymnasium_robotics prints an unrelated Adroit notice to stderr on first import
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics
    gym.register_envs(gymnasium_robotics)


def antmaze_eval_spec(env_id: str = TINY_ANTMAZE_ENV_ID, max_episode_steps: int = 700) -> gym.envs.registration.EnvSpec:
    """D4RL-style eval spec: the episode ends at the goal (``continuing_task=False``)."""
    _register_robotics()
    base = gym.spec(env_id)
    kwargs = {**base.kwargs, "continuing_task": False, "reset_target": False}
    return dataclasses.replace(base, kwargs=kwargs, max_episode_steps=max_episode_steps)


def make_tiny_antmaze(
    dataset_id: str,
    n_episodes: int = 3,
    max_steps: int = 60,
    seed: int = 0,
    *,
    ref_min_score: float = 0.0,
    ref_max_score: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Run the real AntMaze_UMaze-v4 (continuing, fixed target) with random actions.

    Every episode ends by truncation at ``max_steps`` (terminations all False, as in D4RL
    AntMaze). Episode 0 starts in the goal cell so some sparse reward is likely; the others start
    at (3, 1) with the goal at (1, 1), the D4RL umaze layout.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    path = _prepare(dataset_id, overwrite)
    _register_robotics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "AntMaze v4 is out of date"
        env = gym.make(TINY_ANTMAZE_ENV_ID, continuing_task=True, reset_target=False, max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    buffers = []
    for episode in range(n_episodes):
        goal, start = ((3, 1), (3, 1)) if episode == 0 else ((1, 1), (3, 1))
        obs, info = env.reset(seed=seed + episode, options={"goal_cell": goal, "reset_cell": start})
        observations = {k: [v] for k, v in obs.items()}
        actions, rewards, terminations, truncations = [], [], [], []
        success = [bool(info.get("success", False))]
        while True:
            action = rng.uniform(-1.0, 1.0, size=env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            for k, v in obs.items():
                observations[k].append(v)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated))
            success.append(bool(info.get("success", False)))
            if terminated or truncated:
                break
        buffers.append(
            EpisodeBuffer(
                id=episode,
                seed=seed + episode,
                observations={k: np.asarray(v) for k, v in observations.items()},
                actions=np.asarray(actions),
                rewards=np.asarray(rewards),
                terminations=np.asarray(terminations),
                truncations=np.asarray(truncations),
                infos={"success": np.asarray(success)},
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env,
            eval_env=antmaze_eval_spec(),
            ref_min_score=ref_min_score,
            ref_max_score=ref_max_score,
            description=f"tiny AntMaze UMaze test data: {n_episodes} x {max_steps} random steps",
            **_META,
        )
    env.close()
    return path


def make_box_dataset(
    dataset_id: str,
    episode_lengths: Sequence[int] = (5, 7, 4),
    terminated: Sequence[bool] = (True, False, True),
    *,
    env_id: str | None = "Pendulum-v1",
    obs_dim: int = 3,
    act_dim: int = 1,
    nan_reward: bool = False,
    discrete_actions: bool = False,
    overwrite: bool = False,
) -> Path:
    """Synthetic Box-observation data with known values, for exact checks.

    Episode e, step t: observation = e*1000 + t + 0.1*arange(obs_dim) (so a next observation is
    the observation + 1), reward = e + 0.5*t. Episode e ends by termination when
    ``terminated[e]``, else by truncation. With ``env_id`` (default Pendulum-v1, whose spaces match
    the defaults) the dataset records that env, so evaluation can run without MuJoCo.
    ``nan_reward`` puts one NaN reward in; ``discrete_actions`` stores a Discrete action space.
    """
    import minari
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    path = _prepare(dataset_id, overwrite)
    if discrete_actions:
        env_id = None
        action_space: gym.Space = spaces.Discrete(3)
    else:
        action_space = spaces.Box(-2.0, 2.0, (act_dim,), np.float32)
    observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    if env_id is not None:
        env_spaces = gym.make(env_id)
        observation_space, action_space = env_spaces.observation_space, env_spaces.action_space
        obs_dim, act_dim = observation_space.shape[0], action_space.shape[0]
    buffers = []
    for e, (length, ends_terminal) in enumerate(zip(episode_lengths, terminated, strict=True)):
        t = np.arange(length + 1, dtype=np.float32)
        observations = (e * 1000 + t)[:, None] + 0.1 * np.arange(obs_dim, dtype=np.float32)[None, :]
        if discrete_actions:
            actions = (np.arange(length) % 3).astype(np.int64)
        else:
            actions = np.tile(np.linspace(-1, 1, act_dim, dtype=np.float32), (length, 1))
        rewards = e + 0.5 * np.arange(length, dtype=np.float64)
        if nan_reward and e == 0:
            rewards[length // 2] = np.nan
        terms = np.zeros(length, dtype=bool)
        truncs = np.zeros(length, dtype=bool)
        (terms if ends_terminal else truncs)[-1] = True
        buffers.append(
            EpisodeBuffer(
                id=e,
                observations=observations.astype(np.float32),
                actions=actions,
                rewards=rewards,
                terminations=terms,
                truncations=truncs,
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env_id,
            observation_space=observation_space,
            action_space=action_space,
            description="synthetic Box-observation test data",
            **_META,
        )
    return path


def copy_dataset(src_id: str, dst_id: str) -> Path:
    """Copy a dataset to a new id (metadata id updated), e.g. to corrupt the copy."""
    src, dst = _root_path(src_id), _root_path(dst_id)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("fdivrl_cache"))
    patch_metadata(dst_id, dataset_id=dst_id)
    return dst


def patch_metadata(dataset_id: str, /, **updates: object) -> None:
    """Overwrite keys of a dataset's metadata.json (e.g. ``minari_version``)."""
    meta_path = _root_path(dataset_id) / "data" / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    metadata.update(updates)
    meta_path.write_text(json.dumps(metadata))
