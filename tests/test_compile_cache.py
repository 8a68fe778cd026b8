"""The persistent compilation cache every `fdivrl` command turns on (fdivrl/compile_cache.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from fdivrl import compile_cache

TIMING = ("time", "per_s", "wall")


MISS = "PERSISTENT COMPILATION CACHE MISS"  # what JAX logs for each program it compiles, with JAX_EXPLAIN_CACHE_MISSES
OPTIONS = (
    "jax_enable_compilation_cache",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_compilation_cache_max_size",
)


@pytest.fixture
def jax_options():
    """The session's cache options, put back after a test that calls enable() with other settings."""
    before = {name: getattr(jax.config, name) for name in OPTIONS}
    yield
    for name, value in before.items():
        jax.config.update(name, value)


def _train(dataset: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = ["train", "--dataset", dataset, "--steps", "20", "--chunk", "10", "--eval-every", "20"]
    argv += ["--eval-episodes", "1", "--batch-size", "32", "--quiet", "--out", str(out)]
    return subprocess.run([sys.executable, "-m", "fdivrl", *argv], env=env, capture_output=True, text=True, timeout=300)


def _numbers(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in rows]


def test_a_second_run_loads_every_program_from_the_cache_and_gives_the_same_numbers(tiny_dataset_id, tmp_path):
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}  # the CLI sets up its own
    env |= {compile_cache.ENV: str(cache), "JAX_EXPLAIN_CACHE_MISSES": "1"}
    first = _train(tiny_dataset_id, tmp_path / "a", env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count(MISS) > 10  # it compiled, and JAX says so
    assert list(cache.glob(compile_cache.ENTRY)) and not list(cache.glob(compile_cache.TEMP))
    second = _train(tiny_dataset_id, tmp_path / "b", env)
    assert second.returncode == 0, second.stderr
    assert MISS not in second.stderr  # every program came from the cache
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert _numbers(tmp_path / "b" / name) == _numbers(tmp_path / "a" / name), name


@pytest.mark.parametrize("setting", ["off", "0", "OFF"])
def test_off_turns_jax_s_cache_off(setting, jax_options):
    environ = {compile_cache.ENV: setting}
    assert compile_cache.enable(environ) is None
    assert environ == {compile_cache.ENV: setting, "JAX_ENABLE_COMPILATION_CACHE": "false"}
    assert jax.config.jax_enable_compilation_cache is False


def test_an_unusable_directory_is_a_warning_and_no_cache(tmp_path, jax_options):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    environ = {compile_cache.ENV: str(blocker / "cache")}
    with pytest.warns(compile_cache.CompileCacheWarning, match="compilation cache off: cannot use"):
        assert compile_cache.enable(environ) is None
    assert not any(k.startswith("JAX_") for k in environ)


def test_a_jax_cache_the_user_set_is_used_as_it_is(tmp_path, monkeypatch, jax_options):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "old-cache").write_bytes(b"x" * 100)
    monkeypatch.setattr(compile_cache, "MAX_BYTES", 10)  # fdivrl's bound would prune it
    environ = {"JAX_COMPILATION_CACHE_DIR": str(theirs), compile_cache.ENV: str(tmp_path / "ours")}
    assert compile_cache.enable(environ) == theirs
    assert environ == {"JAX_COMPILATION_CACHE_DIR": str(theirs), compile_cache.ENV: str(tmp_path / "ours")}
    assert jax.config.jax_compilation_cache_dir == str(theirs)
    assert (theirs / "old-cache").exists() and not (tmp_path / "ours").exists()


def test_entries_are_written_whole_or_not_at_all(tmp_path):
    from jax._src import lru_cache

    assert getattr(lru_cache.LRUCache.put, "fdivrl_atomic", False)  # the session's enable() installed it
    cache = lru_cache.LRUCache(str(tmp_path), max_size=-1)
    cache.put("k", b"first")
    cache.put("k", b"second")  # a key is written once, as JAX does
    assert cache.get("k") == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["k-cache"]


def test_the_default_lives_under_the_user_cache_directory(tmp_path):
    assert compile_cache.default_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "fdivrl" / "jax"
    assert compile_cache.default_dir({}) == Path.home() / ".cache" / "fdivrl" / "jax"


def test_prune_deletes_the_oldest_entries_down_to_three_quarters_of_the_bound(tmp_path):
    for age, name in enumerate(["new", "mid", "old", "oldest"]):
        entry = tmp_path / f"{name}-cache"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1e9 - age, 1e9 - age))
    (tmp_path / "not-an-entry").write_bytes(b"x" * 1000)
    assert compile_cache.prune(tmp_path, 400) == 0  # at the bound: nothing goes
    assert compile_cache.prune(tmp_path, 399) == 200  # over it: down to 299 bytes, oldest first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid-cache", "new-cache", "not-an-entry"]


def test_prune_deletes_what_killed_writers_left_but_not_entries_being_written(tmp_path):
    left, writing = tmp_path / ".a-cache.11.tmp", tmp_path / ".b-cache.12.tmp"
    for temp in (left, writing):
        temp.write_bytes(b"x" * 10)
    os.utime(left, (1e9, 1e9))
    assert compile_cache.prune(tmp_path, 400) == 10
    assert not left.exists() and writing.exists()


def test_every_training_run_makes_cache_writes_atomic_before_it_compiles(tiny_dataset_id, tmp_path, monkeypatch):
    """bench --workers and Ray start processes that inherit the cache through the environment
    without calling enable(): the training run itself installs the atomic writes."""
    from fdivrl import config as C
    from fdivrl.training import loop

    class Installed(Exception):
        pass

    def install() -> None:
        raise Installed

    monkeypatch.setattr(compile_cache, "atomic_entries", install)
    with pytest.raises(Installed):
        loop.train(C.preset_config("quick", tiny_dataset_id, "KL"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # before the run directory, let alone a compile
