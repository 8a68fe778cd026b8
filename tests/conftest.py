"""Shared pytest fixtures: a private minari root with tiny datasets in it.

Fixture names are relied on by other test files; keep them stable.

* ``minari_root`` (session, autouse): a temporary directory set as ``$MINARI_DATASETS_PATH`` for
  the whole session in every worker (restored afterwards), so no test ever reads or writes
  ``~/.minari``, whatever that holds on the machine running the tests.
* ``tiny_dataset_id`` (session): ``"fdivrl-test/antmaze-tiny-v1"``, 3 episodes x 60 steps of the
  real AntMaze_UMaze-v4 (dict observations, all truncated, eval env with ``continuing_task=False``,
  ref scores 0 and 1). Built once, in well under a second.
* ``box_dataset_id`` (session): ``"fdivrl-test/box-tiny-v0"``, synthetic Box observations recorded
  against Pendulum-v1, episode lengths (5, 7, 4) ending by termination, truncation, termination
  (see ``tests/tiny_datasets.make_box_dataset`` for the exact values).

Tests that damage a dataset must work on a copy (``tiny_datasets.copy_dataset``) and delete it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Tests run a few steps per compiled program, so XLA's compile time dominates them: with LLVM's
# optimization level 0 the whole suite took 539 s instead of 670 s (2 cores, 2 workers). Set before
# jax creates its CPU backend; a value already in the environment wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import pytest
from tiny_datasets import make_box_dataset, make_tiny_antmaze  # tests/ is on sys.path (rootdir conftest)

from fdivrl import compile_cache

# One compilation cache for the session, shared by both xdist workers and every subprocess they
# start (the CLI tests compile the same programs many times), fresh each session and never the
# user's ~/.cache. The process that makes it (xdist's controller, which the workers inherit it
# from, or a run without xdist) deletes it at the end.
_MADE_CACHE = "FDIVRL_TEST_COMPILE_CACHE" not in os.environ
if _MADE_CACHE:
    os.environ["FDIVRL_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="fdivrl-test-compile-cache-")
os.environ["FDIVRL_COMPILE_CACHE"] = os.environ["FDIVRL_TEST_COMPILE_CACHE"]
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
compile_cache.enable()

TINY_ANTMAZE_ID = "fdivrl-test/antmaze-tiny-v1"
BOX_DATASET_ID = "fdivrl-test/box-tiny-v0"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _MADE_CACHE:
        shutil.rmtree(os.environ["FDIVRL_TEST_COMPILE_CACHE"], ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def minari_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh minari root for the whole session (``$MINARI_DATASETS_PATH``)."""
    root = tmp_path_factory.mktemp("minari_datasets")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield root
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


@pytest.fixture(scope="session")
def tiny_dataset_id(minari_root: Path) -> str:
    """Id of a tiny real-AntMaze dataset inside ``minari_root``."""
    make_tiny_antmaze(TINY_ANTMAZE_ID, n_episodes=3, max_steps=60, seed=0)
    return TINY_ANTMAZE_ID


@pytest.fixture(scope="session")
def box_dataset_id(minari_root: Path) -> str:
    """Id of a tiny synthetic Box-observation dataset with terminating episodes."""
    make_box_dataset(BOX_DATASET_ID)
    return BOX_DATASET_ID
