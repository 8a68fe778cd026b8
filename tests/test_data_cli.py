"""`fdivrl data walker` (train + export through the online pipeline) and `fdivrl data antmaze` via the CLI."""

from __future__ import annotations

import json

import jax
import minari
import numpy as np
import pytest

from fdivrl import config as C
from fdivrl.cli.app import main
from fdivrl.data import datasets as minari_data
from fdivrl.data.antmaze import walker
from fdivrl.data.antmaze import walker_training as W
from fdivrl.learning.networks import Actor
from fdivrl.training.loop import train


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_walker_is_an_online_run_and_exports_its_actor(tmp_path):
    cfg = C.with_overrides(
        W.walker_config(steps=40),
        top={"chunk": 20, "eval_every": 40, "eval_episodes": 1, "final_eval_episodes": 1},
        online={"start_steps": 20, "buffer_size": 100},
        learner={"batch_size": 8},
    )
    assert cfg.env == walker.ENV_ID and cfg.per_type == "uniform" and cfg.learner.grad_penalty == 0.0
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "finished" and summary["env"] == walker.ENV_ID
    path = W.export(tmp_path / "run", tmp_path / "walker.npz", {"command": "test", "seed": 0}, measure_episodes=1)
    policy = walker.load_walker(path)
    assert policy.record["checkpoint_step"] == 40 and policy.record["command"] == "test"
    measured = policy.record["measured"]
    assert set(measured) == set(W.QUALITY_BAR)
    for task, result in measured.items():
        assert result["episodes"] == 1 and result["bar"] == W.QUALITY_BAR[task]
        assert result["meets_bar"] == (result["success_rate"] >= result["bar"])
    params, _ = W.actor_params(tmp_path / "run")
    obs, delta = np.zeros((3, walker.ANT_OBS_DIM), np.float32), np.ones((3, 2), np.float32)
    direct = np.tanh(
        np.asarray(Actor(W.WALKER_HIDDEN, walker.ACT_DIM).apply(params, walker.walker_input(obs, delta))[0])
    )
    np.testing.assert_allclose(policy(obs, delta), direct, rtol=1e-5, atol=1e-6)


def test_data_antmaze_writes_a_loadable_standin(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    actor = Actor(W.WALKER_HIDDEN, walker.ACT_DIM)
    params = actor.init(jax.random.PRNGKey(0), np.zeros((1, walker.OBS_DIM), np.float32))["params"]
    walker_file = walker.save_walker(tmp_path / "w.npz", params, W.WALKER_HIDDEN, False, {"command": "random init"})
    argv = ["data", "antmaze", "umaze", "--steps", "400", "--ref-episodes", "1", "--envs", "2"]
    code, out, err = cli([*argv, "--walker-file", str(walker_file), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dataset_id"] == "fdivrl/antmaze/umaze-v1" and summary["steps"] == 400
    assert summary["walker"]["file"] == str(walker_file) and summary["walker"]["measured_success"] == {}
    assert minari.load_dataset("fdivrl/antmaze/umaze-v1").total_steps == 400
    _, info = minari_data.load("fdivrl/antmaze/umaze-v1")
    assert info.is_local_standin and (info.obs_dim, info.act_dim) == (31, 8)
    # a second run refuses to overwrite, with one line
    code, _, err = cli([*argv, "--walker-file", str(walker_file)], capsys)
    assert code != 0 and "already exists" in err and "Traceback" not in err
    # one process per env makes the very same data
    code, _, err = cli([*argv, "--walker-file", str(walker_file), "--vectorization", "async", "--overwrite"], capsys)
    assert code == 0, err
    assert minari_data.load("fdivrl/antmaze/umaze-v1")[1].fingerprint == info.fingerprint
    code, _, err = cli([*argv, "--vectorization", "threads"], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "--vectorization" in err


def test_missing_walker_file_is_one_line(tmp_path, capsys):
    code, _, err = cli(["data", "antmaze", "umaze", "--walker-file", str(tmp_path / "none.npz")], capsys)
    assert code != 0 and "fdivrl data walker" in err and "Traceback" not in err


TINY_TRAIN = ["train", "--per-type", "KL", "--steps", "4", "--chunk", "2", "--eval-every", "4", "--eval-episodes", "1"]


@pytest.fixture
def first_use(tmp_path, monkeypatch):
    """An empty minari root, a random-init walker as the package's, and a 300-step default stand-in."""
    from fdivrl.data.antmaze import generator as antmaze_gen

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    actor = Actor(W.WALKER_HIDDEN, walker.ACT_DIM)
    params = actor.init(jax.random.PRNGKey(0), np.zeros((1, walker.OBS_DIM), np.float32))["params"]
    monkeypatch.setattr(walker, "DEFAULT_WALKER_PATH", tmp_path / "w.npz")
    walker.save_walker(walker.DEFAULT_WALKER_PATH, params, W.WALKER_HIDDEN, False, {"command": "random init"})
    monkeypatch.setattr(antmaze_gen, "DEFAULT_STEPS", 300)
    monkeypatch.setattr(antmaze_gen, "REF_EPISODES", 1)
    return tmp_path / "datasets"


def test_train_default_generates_the_umaze_standin_on_first_use(first_use, tmp_path, capsys):
    """No D4RL umaze and no stand-in: `fdivrl train` makes fdivrl/antmaze/umaze-v1 with the
    package's walker, says so, trains on it, and uses it without regenerating the next time."""
    argv = TINY_TRAIN
    code, _, err = cli([*argv, "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 0, err
    assert "generating the local stand-in fdivrl/antmaze/umaze-v1" in err
    assert minari.load_dataset("fdivrl/antmaze/umaze-v1").total_steps == 300
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["dataset"] == "fdivrl/antmaze/umaze-v1"
    code, _, err = cli([*argv, "--out", str(tmp_path / "run2"), "--quiet"], capsys)
    assert code == 0, err
    assert "generating" not in err and "using fdivrl/antmaze/umaze-v1" in err


def test_train_default_waits_for_another_process_generating_it(first_use, tmp_path, monkeypatch, capsys):
    """A second `fdivrl train` on a fresh machine waits for the first one's stand-in and trains on it."""
    from fdivrl.cli import data as cli_module
    from fdivrl.data.antmaze import generator as antmaze_gen
    from fdivrl.runs.lock import RunLock

    staging = first_use / antmaze_gen.STAGING_DIR
    staging.mkdir(parents=True)
    other = RunLock(staging / "fdivrl__antmaze__umaze-v1.lock").acquire()  # the other process
    naps: list[float] = []

    def other_process_finishes(seconds: float) -> None:
        naps.append(seconds)
        other.release()
        antmaze_gen.generate("umaze", 200, 5, walker.load_walker(), n_envs=2, ref_episodes=1)

    monkeypatch.setattr(cli_module.time, "sleep", other_process_finishes)
    code, _, err = cli([*TINY_TRAIN, "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 0, err
    assert naps == [cli_module.WAIT_POLL_S] and "waiting for that one" in err
    assert minari.load_dataset("fdivrl/antmaze/umaze-v1").total_steps == 200  # the other process's


def test_train_default_without_data_or_walker_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    monkeypatch.setattr(walker, "DEFAULT_WALKER_PATH", tmp_path / "none.npz")
    code, _, err = cli(["train", "--steps", "4"], capsys)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "minari download D4RL/antmaze/umaze-v1" in err and "fdivrl data walker" in err
    # a bad option is reported before anything is generated
    code, _, err = cli(["train", "--beta", "-1"], capsys)
    assert code != 0 and "beta must be > 0" in err and "walker" not in err
