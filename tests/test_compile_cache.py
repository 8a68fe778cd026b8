"""The persistent compilation cache every `fdivrl` command turns on (fdivrl/compile_cache.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fdivrl import compile_cache

TIMING = ("time", "per_s", "wall")


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
    env[compile_cache.ENV] = str(cache)
    first = _train(tiny_dataset_id, tmp_path / "a", env)
    assert first.returncode == 0, first.stderr
    programs = {p.name for p in cache.glob("*-cache")}
    assert programs, "the first run cached nothing"
    second = _train(tiny_dataset_id, tmp_path / "b", env)
    assert second.returncode == 0, second.stderr
    assert {p.name for p in cache.glob("*-cache")} == programs  # every program was found: none compiled anew
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert _numbers(tmp_path / "b" / name) == _numbers(tmp_path / "a" / name), name


@pytest.mark.parametrize("setting", ["off", "0", "OFF"])
def test_off_leaves_jax_and_the_environment_alone(setting):
    environ = {compile_cache.ENV: setting}
    assert compile_cache.enable(environ) is None
    assert environ == {compile_cache.ENV: setting}


def test_an_unusable_directory_warns_once_and_the_command_runs_without_a_cache(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    environ = {compile_cache.ENV: str(blocker / "cache")}
    with pytest.warns(compile_cache.CompileCacheWarning, match="compilation cache off: cannot use"):
        assert compile_cache.enable(environ) is None
    assert not any(k.startswith("JAX_") for k in environ)


def test_a_jax_cache_the_user_set_wins_over_fdivrls_own(tmp_path):
    # the session's JAX_* settings are in os.environ already (conftest), so nothing in jax.config changes
    environ = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "theirs"), compile_cache.ENV: str(tmp_path)}
    assert compile_cache.enable(environ) == tmp_path / "theirs"
    assert environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "theirs")


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
