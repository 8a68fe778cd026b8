"""fdivrl.data.datasets: flattening, reward/mask conventions, cache, and one-line DatasetErrors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_datasets import copy_dataset, make_box_dataset, patch_metadata

from fdivrl.data import datasets as md
from fdivrl.errors import ConfigError, DatasetError


@pytest.fixture
def scratch(minari_root: Path) -> Iterator[Callable[[str], str]]:
    """Register dataset ids to delete after the test, so damaged data never leaks to other tests."""
    created: list[str] = []

    def register(dataset_id: str) -> str:
        created.append(dataset_id)
        return dataset_id

    yield register
    for dataset_id in created:
        shutil.rmtree(minari_root / dataset_id, ignore_errors=True)


@pytest.fixture
def tiny_copy(tiny_dataset_id: str, scratch: Callable[[str], str]) -> Callable[[str], str]:
    """Copy the tiny AntMaze dataset to a scratch id (fresh cache state, free to damage)."""

    def make(name: str) -> str:
        dataset_id = scratch(f"fdivrl-test/{name}-v1")
        copy_dataset(tiny_dataset_id, dataset_id)
        return dataset_id

    return make


def _raises_one_line(func: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(DatasetError) as err:
        func()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ------------------------------------------------------------------------------------- loading


def test_load_tiny_antmaze_shapes_and_info(tiny_dataset_id: str) -> None:
    tr, info = md.load(tiny_dataset_id)
    n = 3 * 60
    assert tr.observations.shape == (n, 31) and tr.next_observations.shape == (n, 31)
    assert tr.actions.shape == (n, 8)
    assert tr.rewards.shape == tr.masks.shape == tr.episode_ends.shape == (n,)
    for name in ("observations", "actions", "rewards", "next_observations", "masks"):
        assert getattr(tr, name).dtype == np.float32, name
    assert tr.episode_ends.dtype == np.bool_
    assert tr.size == n and len(tr) == 6  # a NamedTuple of six arrays (a JAX pytree)
    assert info.dataset_id == tiny_dataset_id
    assert info.env_id == "AntMaze_UMaze-v4"
    assert info.obs_keys == ("achieved_goal", "observation", "desired_goal")
    assert (info.obs_dim, info.act_dim, info.n_episodes, info.n_transitions) == (31, 8, 3, n)
    assert (info.ref_min_score, info.ref_max_score) == (0.0, 1.0)
    assert info.reward_shift == -1.0
    assert info.minari_version == "0.5.4"
    assert info.is_local_standin
    assert info.eval_env_spec is not None and '"continuing_task": false' in info.eval_env_spec
    assert info.action_low == (-1.0,) * 8 and info.action_high == (1.0,) * 8
    assert info.to_dict()["dataset_id"] == tiny_dataset_id


def test_reference_scores_only_when_they_define_a_normalized_score(tiny_dataset_id: str) -> None:
    _, info = md.load(tiny_dataset_id)
    assert info.reference_scores == (0.0, 1.0)
    for low, high in ((0.0, 0.0), (2.0, 1.0), (None, 1.0), (0.0, None), (0.0, float("nan")), (float("-inf"), 1.0)):
        changed = dataclasses.replace(info, ref_min_score=low, ref_max_score=high)
        assert changed.reference_scores == (None, None), (low, high)


def test_arrays_match_minari_episodes(tiny_dataset_id: str) -> None:
    """Compare against minari's own episode iterator: key order, alignment, shift, masks."""
    import minari

    tr, _ = md.load(tiny_dataset_id)
    episodes = list(minari.load_dataset(tiny_dataset_id).iterate_episodes())
    obs = [
        np.concatenate([e.observations[k] for k in ("achieved_goal", "observation", "desired_goal")], 1)
        for e in episodes
    ]
    np.testing.assert_array_equal(tr.observations, np.concatenate([o[:-1] for o in obs]).astype(np.float32))
    np.testing.assert_array_equal(tr.next_observations, np.concatenate([o[1:] for o in obs]).astype(np.float32))
    np.testing.assert_array_equal(tr.actions, np.concatenate([e.actions for e in episodes]))
    raw = np.concatenate([e.rewards for e in episodes]).astype(np.float32)
    np.testing.assert_array_equal(tr.rewards, raw - 1.0)
    assert set(np.unique(raw)) <= {0.0, 1.0}
    # achieved_goal (x, y) leads the state, desired_goal closes it
    for key, cols in (("achieved_goal", slice(0, 2)), ("desired_goal", slice(29, 31))):
        part = np.concatenate([e.observations[key][:-1] for e in episodes]).astype(np.float32)
        np.testing.assert_array_equal(tr.observations[:, cols], part)
    # all AntMaze episodes are truncated: no termination, so every mask is 1
    assert all(e.truncations[-1] and not e.terminations.any() for e in episodes)
    assert np.all(tr.masks == 1.0)
    ends = np.flatnonzero(tr.episode_ends)
    np.testing.assert_array_equal(ends, np.cumsum([len(e.rewards) for e in episodes]) - 1)
    within = ~tr.episode_ends[:-1]
    np.testing.assert_array_equal(tr.next_observations[:-1][within], tr.observations[1:][within])


def test_reward_shift_applied_exactly_once(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("shift")
    raw, info0 = md.load(dataset_id, reward_shift=0.0)
    assert info0.reward_shift == 0.0
    for _ in range(2):  # second round comes from the cache: must not shift again
        shifted, info = md.load(dataset_id)
        np.testing.assert_array_equal(shifted.rewards, raw.rewards - 1.0)
    assert info.from_cache
    np.testing.assert_array_equal(md.load(dataset_id, reward_shift=0.0)[0].rewards, raw.rewards)


def test_box_masks_from_terminations_only(box_dataset_id: str) -> None:
    tr, info = md.load(box_dataset_id, obs_keys=("ignored-for-box",))
    assert info.obs_keys == () and info.env_id == "Pendulum-v1"
    assert (info.obs_dim, info.act_dim, info.n_episodes, info.n_transitions) == (3, 1, 3, 16)
    # lengths (5, 7, 4); episode 0 and 2 terminate, episode 1 is truncated
    expected_masks = np.ones(16, np.float32)
    expected_masks[[4, 15]] = 0.0
    np.testing.assert_array_equal(tr.masks, expected_masks)
    np.testing.assert_array_equal(np.flatnonzero(tr.episode_ends), [4, 11, 15])
    np.testing.assert_allclose(tr.next_observations, tr.observations + 1.0)
    expected_rewards = np.concatenate([e + 0.5 * np.arange(n) for e, n in enumerate((5, 7, 4))]) - 1.0
    np.testing.assert_allclose(tr.rewards, expected_rewards)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 6), st.booleans()), min_size=1, max_size=5))
def test_masks_and_episode_ends_property(scratch: Callable[[str], str], episodes: list[tuple[int, bool]]) -> None:
    dataset_id = scratch("fdivrl-test/box-prop-v0")
    lengths = [n for n, _ in episodes]
    terminal = [t for _, t in episodes]
    make_box_dataset(dataset_id, lengths, terminal, env_id=None, overwrite=True)
    tr, info = md.load(dataset_id, reward_shift=0.0)
    ends = np.cumsum(lengths) - 1
    np.testing.assert_array_equal(np.flatnonzero(tr.episode_ends), ends)
    np.testing.assert_array_equal(np.flatnonzero(tr.masks == 0.0), ends[np.asarray(terminal, bool)])
    assert info.n_episodes == len(lengths) and info.n_transitions == sum(lengths)
    assert info.env_id is None


# --------------------------------------------------------------------------------------- cache


def test_cache_hit_identical_and_not_reread(tiny_copy: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = tiny_copy("cache")
    t0 = time.perf_counter()
    first, info1 = md.load(dataset_id)
    t1 = time.perf_counter()
    assert not info1.from_cache
    cache_files = list((Path(info1.data_path).parent / md.CACHE_DIR_NAME).glob("*.npz"))
    assert len(cache_files) == 1

    def no_reading(storage: object) -> None:
        raise AssertionError("the data file was read although a valid cache exists")

    monkeypatch.setattr(md, "_read_episodes", no_reading)
    t2 = time.perf_counter()
    second, info2 = md.load(dataset_id)
    t3 = time.perf_counter()
    assert info2.from_cache
    for name in ("observations", "actions", "rewards", "next_observations", "masks", "episode_ends"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)
        assert getattr(first, name).dtype == getattr(second, name).dtype
    assert info2.n_episodes == info1.n_episodes
    print(f"tiny dataset load: first {1e3 * (t1 - t0):.1f} ms, cached {1e3 * (t3 - t2):.1f} ms")
    # a different reward shift is a different cache entry, so it must read again
    with pytest.raises(DatasetError, match="the data file was read"):
        md.load(dataset_id, reward_shift=0.0)


def test_fingerprint_names_the_arrays_whether_cached_or_not(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("fingerprint")
    fresh, info = md.load(dataset_id, cache=False)
    assert not info.from_cache and len(info.fingerprint) == 32
    assert md.load(dataset_id)[1].fingerprint == info.fingerprint  # writes the cache
    cached = md.load(dataset_id)[1]
    assert cached.from_cache and cached.fingerprint == info.fingerprint
    # other arrays, other fingerprint: a reward shift, one changed action, one field's dtype
    assert md.load(dataset_id, reward_shift=0.0)[1].fingerprint != info.fingerprint
    arrays = fresh._asdict()
    assert md.fingerprint(arrays) == info.fingerprint
    nudged = arrays["actions"].copy()
    nudged[5, 3] = np.nextafter(nudged[5, 3], np.float32(2))
    assert md.fingerprint({**arrays, "actions": nudged}) != info.fingerprint
    assert md.fingerprint({**arrays, "masks": arrays["masks"].astype(np.float64)}) != info.fingerprint


def test_cache_disabled_reads_and_writes_nothing(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("nocache")
    _, info = md.load(dataset_id, cache=False)
    _, info = md.load(dataset_id, cache=False)
    assert not info.from_cache
    assert not (Path(info.data_path).parent / md.CACHE_DIR_NAME).exists()


def test_corrupt_cache_is_rebuilt(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("badcache")
    good, info = md.load(dataset_id)
    (cache_file,) = (Path(info.data_path).parent / md.CACHE_DIR_NAME).glob("*.npz")
    cache_file.write_bytes(b"not an npz at all")
    again, info = md.load(dataset_id)
    assert not info.from_cache
    np.testing.assert_array_equal(again.observations, good.observations)
    assert md.load(dataset_id)[1].from_cache  # rewritten and valid
    # a truncated file (e.g. a crash in an old non-atomic writer) is also ignored
    cache_file.write_bytes(cache_file.read_bytes()[:200])
    assert not md.load(dataset_id)[1].from_cache
    assert [p.name for p in cache_file.parent.iterdir()] == [cache_file.name]  # no temp file left


def test_cache_invalidated_when_data_file_changes(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("stale")
    _, info = md.load(dataset_id)
    data_file = Path(info.data_path) / "main_data.hdf5"
    stat = data_file.stat()
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not md.load(dataset_id)[1].from_cache


# -------------------------------------------------------------------------------------- errors


def test_missing_dataset_message(tiny_dataset_id: str, minari_root: Path) -> None:
    _raises_one_line(
        lambda: md.load("D4RL/antmaze/medium-play-v1"),
        "'D4RL/antmaze/medium-play-v1' not found",
        str(minari_root),
        tiny_dataset_id,  # lists what is there
        "minari download D4RL/antmaze/medium-play-v1",
        "fdivrl data antmaze medium-play",
    )
    message = _raises_one_line(lambda: md.load("someone/pen-expert-v2"), "minari download someone/pen-expert-v2")
    assert "fdivrl data" in message


def test_missing_dataset_in_empty_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    assert md.datasets_root() == tmp_path / "empty"
    assert md.local_datasets() == []
    _raises_one_line(
        lambda: md.load("D4RL/antmaze/umaze-v1"), "no datasets are present under", "fdivrl data antmaze umaze"
    )


def test_default_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    assert md.datasets_root() == Path.home() / ".minari" / "datasets"


def test_malformed_id_rejected(minari_root: Path) -> None:
    for bad in ("../etc-v0", "/abs/path-v1", "a b-v1", ""):
        _raises_one_line(lambda bad=bad: md.load(bad), "malformed dataset id")


def test_corrupt_hdf5(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("corrupt")
    (md.dataset_dir(dataset_id) / "data" / "main_data.hdf5").write_bytes(b"\x00garbage" * 100)
    _raises_one_line(lambda: md.load(dataset_id), dataset_id, "unreadable or corrupt")


def test_missing_data_file(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("nodata")
    (md.dataset_dir(dataset_id) / "data" / "main_data.hdf5").unlink()
    _raises_one_line(lambda: md.load(dataset_id), dataset_id, "unreadable or corrupt")


def test_missing_metadata(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("nometa")
    (md.dataset_dir(dataset_id) / "data" / "metadata.json").unlink()
    _raises_one_line(lambda: md.load(dataset_id), dataset_id, "incomplete", "metadata.json")


def test_corrupt_metadata(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("badmeta")
    (md.dataset_dir(dataset_id) / "data" / "metadata.json").write_text("{not json")
    _raises_one_line(lambda: md.load(dataset_id), dataset_id, "metadata.json")


def test_metadata_step_count_mismatch(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("badcount")
    patch_metadata(dataset_id, total_steps=999)
    _raises_one_line(lambda: md.load(dataset_id), "999", "180")


def test_nan_rewards(scratch: Callable[[str], str]) -> None:
    dataset_id = scratch("fdivrl-test/box-nan-v0")
    make_box_dataset(dataset_id, nan_reward=True)
    _raises_one_line(lambda: md.load(dataset_id), dataset_id, "NaN/inf", "rewards")
    assert not (md.dataset_dir(dataset_id) / md.CACHE_DIR_NAME).exists()  # bad data never cached


def test_inf_observation(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("infobs")
    with h5py.File(md.dataset_dir(dataset_id) / "data" / "main_data.hdf5", "r+") as f:
        f["episode_1/observations/observation"][5, 3] = np.inf
    _raises_one_line(lambda: md.load(dataset_id), "NaN/inf", "observations")


def test_newer_minari_version(tiny_copy: Callable[[str], str]) -> None:
    import minari

    dataset_id = tiny_copy("future")
    patch_metadata(dataset_id, minari_version="9.1.0")
    _raises_one_line(lambda: md.load(dataset_id), "9.1.0", minari.__version__, "rebuild")


def test_unsupported_old_minari_version(tiny_copy: Callable[[str], str]) -> None:
    dataset_id = tiny_copy("ancient")
    patch_metadata(dataset_id, minari_version="0.1.0")
    _raises_one_line(lambda: md.load(dataset_id), "0.1.0", "no longer supports")


def test_unknown_obs_key_lists_available(tiny_dataset_id: str) -> None:
    _raises_one_line(
        lambda: md.load(tiny_dataset_id, obs_keys=("observation", "qpos")),
        "qpos",
        "available keys: achieved_goal, desired_goal, observation",
    )


def test_discrete_actions_rejected(scratch: Callable[[str], str]) -> None:
    dataset_id = scratch("fdivrl-test/box-discrete-v0")
    make_box_dataset(dataset_id, discrete_actions=True)
    _raises_one_line(lambda: md.load(dataset_id), "Discrete action space", "Box")


def test_bad_reward_shift(tiny_dataset_id: str) -> None:
    with pytest.raises(ConfigError):
        md.load(tiny_dataset_id, reward_shift=float("nan"))


# -------------------------------------------------------------------- listing and environments


def test_local_datasets_and_unversioned_id(tiny_dataset_id: str, box_dataset_id: str) -> None:
    present = md.local_datasets()
    assert tiny_dataset_id in present and box_dataset_id in present
    # the fallback walker (used when minari's listing fails) agrees with minari
    assert sorted(md._walk_local_datasets(md.datasets_root())) == present
    assert md.load("fdivrl-test/antmaze-tiny")[1].dataset_id == tiny_dataset_id


def test_standin_command() -> None:
    assert md.standin_command("D4RL/antmaze/large-diverse-v1") == "fdivrl data antmaze large-diverse"
    assert md.standin_command("D4RL/pen/human-v2") is None


def test_env_spec_from_older_gymnasium() -> None:
    """Specs written by gymnasium 0.29 carry fields 1.x dropped; they must still parse."""
    old_json = (
        '{"id": "Pendulum-v1", "entry_point": "gymnasium.envs.classic_control.pendulum:PendulumEnv", '
        '"reward_threshold": null, "nondeterministic": false, "max_episode_steps": 200, '
        '"order_enforce": true, "autoreset": false, "disable_env_checker": false, '
        '"apply_api_compatibility": false, "kwargs": {}, "additional_wrappers": [], '
        '"vector_entry_point": null}'
    )
    spec = md.env_spec_from_json(old_json)
    assert spec.id == "Pendulum-v1" and spec.max_episode_steps == 200


def test_recover_eval_env_antmaze(tiny_dataset_id: str) -> None:
    _, info = md.load(tiny_dataset_id)
    env = md.recover_eval_env(info)
    try:
        assert env.spec.id == "AntMaze_UMaze-v4"
        assert env.spec.kwargs["continuing_task"] is False
        assert env.spec.max_episode_steps == 700
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"achieved_goal", "observation", "desired_goal"}
    finally:
        env.close()


def test_recover_eval_env_falls_back_to_env_spec(box_dataset_id: str) -> None:
    _, info = md.load(box_dataset_id)
    assert info.eval_env_spec is None or '"Pendulum-v1"' in info.eval_env_spec
    env = md.recover_eval_env(info, max_episode_steps=10)
    try:
        assert env.spec.id == "Pendulum-v1" and env.spec.max_episode_steps == 10
    finally:
        env.close()


def test_recover_eval_env_without_env(scratch: Callable[[str], str]) -> None:
    dataset_id = scratch("fdivrl-test/box-noenv-v0")
    make_box_dataset(dataset_id, env_id=None)
    _, info = md.load(dataset_id)
    _raises_one_line(lambda: md.recover_eval_env(info), "records no environment")
