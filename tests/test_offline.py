"""`fdivrl train --mode offline` end to end on a tiny real-AntMaze dataset made by the tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_datasets import copy_dataset, make_tiny_antmaze

from fdivrl import config as C
from fdivrl.analysis import compare, values
from fdivrl.cli.app import main
from fdivrl.cli.train import load_train_config
from fdivrl.data.datasets import datasets_root
from fdivrl.errors import TrainingDiverged
from fdivrl.runs import stop
from fdivrl.runs.checkpoint import latest_checkpoint, list_checkpoints
from fdivrl.runs.io import read_jsonl
from fdivrl.training.loop import train
from fdivrl.training.offline import OfflineMode


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def small_config(dataset: str, steps: int = 400, **learner) -> C.TrainConfig:
    return C.with_overrides(
        C.preset_config("quick", dataset, "KL"),
        top={"steps": steps, "chunk": 100, "eval_every": 200, "eval_episodes": 1, "final_eval_episodes": 1},
        learner={"hidden": (32, 32), "batch_size": 32, **learner},
    )


def test_cli_train_writes_a_complete_run_directory(tiny_dataset_id, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", tiny_dataset_id, "--per-type", "kl", "--steps", "20", "--chunk", "10"]
    argv += ["--eval-every", "10", "--eval-episodes", "1", "--seed", "0", "--seeds", "2", "--out", str(out)]
    code, stdout, err = cli([*argv, "--json", "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["per_type"] == "KL" and summary["steps"] == 20 and summary["seeds"] == [0, 1]
    final = summary["final_eval"]
    assert {"d4rl_score", "success_rate", "mean_return", "normalized_score_x100"} <= set(final)
    assert [e["seed"] for e in final["per_seed"]] == [0, 1]
    assert summary["data"]["is_local_standin"] is True
    # the test dataset belongs to no suite, so no reward bounds: the value check claims nothing
    assert summary["values"]["status"] == "not measured" and summary["values"]["rule"] == values.RULE

    config = json.loads((out / "config.json").read_text())
    assert config["config"]["per_type"] == "KL" and config["seeds"] == {"seeds": [0, 1]}
    assert config["versions"]["jax"] and config["versions"]["minari"] == "0.5.4"
    assert config["config"]["replay"]["lower_clip"] == 1.0  # KL's default, recorded

    metrics = read_jsonl(out / "metrics.jsonl")
    assert [(m["step"], m["seed"]) for m in metrics] == [(10, 0), (10, 1), (20, 0), (20, 1)]
    for key in ("critic_loss", "value_loss", "actor_loss", "q_mean", "v_mean", "priority_weight_mean"):
        assert all(np.isfinite(m[key]) for m in metrics), key
    assert all(0 < m["priority_ess_frac"] <= 1 for m in metrics)
    evals = read_jsonl(out / "eval.jsonl")
    assert [(e["step"], e["seed"]) for e in evals] == [(10, 0), (10, 1), (20, 0), (20, 1)]
    assert list_checkpoints(out / "checkpoints")[-1][0] == 20

    # the same directory again without --resume: refused in one line, nothing lost
    before = (out / "metrics.jsonl").read_bytes()
    code, _, err = cli(argv, capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "--resume" in err
    assert (out / "metrics.jsonl").read_bytes() == before

    # --config repeats the run from its config.json: the same config and, on this machine, the same numbers
    again = tmp_path / "again"
    code, printed, err = cli(["train", "--config", str(out), "--out", str(again), "--quiet"], capsys)
    assert code == 0, err
    wall = json.loads((again / "summary.json").read_text())["wall_s"]
    assert wall > 0 and f"wall time: {wall / 60:.1f} min" in printed
    assert json.loads((again / "config.json").read_text())["config"] == config["config"]
    numbers = [{k: v for k, v in m.items() if "per_s" not in k} for m in metrics]
    assert [{k: v for k, v in m.items() if "per_s" not in k} for m in read_jsonl(again / "metrics.jsonl")] == numbers
    assert read_jsonl(again / "eval.jsonl") == evals
    # options still override it; what its preset derived from per_type and data cannot be changed
    code, _, err = cli(["train", "--config", str(out / "config.json"), "--per-type", "JS", "--out", str(again)], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "--per-type would change" in err
    cfg = load_train_config(out)
    assert (cfg.per_type, cfg.seeds, cfg.steps, cfg.learner.hidden) == ("KL", (0, 1), 20, (256, 256))
    assert C.apply_options(cfg, {"steps": 300, "beta": 3.0}).divergence.beta == 3.0


def test_cli_sample_mode_with_seed_js(tiny_dataset_id, tmp_path, capsys):
    out = tmp_path / "js"
    argv = ["train", "--dataset", tiny_dataset_id, "--per-type", "JS", "--priority-mode", "sample", "--steps", "100"]
    argv += ["--chunk", "100", "--eval-episodes", "1", "--out", str(out), "--quiet", "--log", "tensorboard"]
    code, stdout, err = cli(argv, capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["replay"]["mode"] == "sample"
    assert config["replay"]["lower_clip"] == 0.5  # the seed's js_min_weight, not ROER's 1
    assert "D4RL-style score" in stdout
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    # the seed's JS is trained as specified, and the user is told what that does (docs/theory.md §3)
    assert "no minimizer" in err and "behaviour cloning" in err and "JS-exact" in err


def test_missing_dataset_says_where_to_get_it(tiny_dataset_id, capsys):
    code, _, err = cli(["train", "--dataset", "D4RL/antmaze/medium-play-v1"], capsys)
    assert code == 3
    line = err.strip()
    assert "\n" not in line
    assert "minari download D4RL/antmaze/medium-play-v1" in line
    assert "fdivrl data antmaze medium-play" in line
    assert tiny_dataset_id in line  # what is present locally


@pytest.fixture(scope="module")
def straight_run(tiny_dataset_id, tmp_path_factory) -> Path:
    """The uninterrupted 400-step run that interrupted and resumed ones must reproduce."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(small_config(tiny_dataset_id), out)
    return out


def assert_same_run(a: Path, b: Path, summary: dict) -> None:
    """Same logs, same final checkpoint arrays, same final evaluation."""
    for name in ("metrics.jsonl", "eval.jsonl"):
        assert read_jsonl(a / name) == read_jsonl(b / name)
    ca, cb = latest_checkpoint(a / "checkpoints"), latest_checkpoint(b / "checkpoints")
    assert ca.step == cb.step == 400
    with np.load(ca.path) as za, np.load(cb.path) as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            if k != "__manifest__":  # its treedef text holds object addresses (apply_fn)
                np.testing.assert_array_equal(za[k], zb[k])
    assert json.loads((a / "summary.json").read_text())["final_eval"] == summary["final_eval"]


def test_resume_after_interruption_equals_an_uninterrupted_run(tiny_dataset_id, straight_run, tmp_path):
    cfg = small_config(tiny_dataset_id)

    class Interrupt(Exception):
        pass

    def stop_at_300(step: int) -> None:
        if step == 300:
            raise Interrupt  # like a crash after step 300 was logged, last checkpoint at 200

    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "resumed", on_chunk=stop_at_300)
    assert read_jsonl(tmp_path / "resumed" / "metrics.jsonl")[-1]["step"] == 300
    first = latest_checkpoint(tmp_path / "resumed" / "checkpoints")
    t0 = time.perf_counter()
    summary = train(cfg, tmp_path / "resumed", resume=True)
    second = time.perf_counter() - t0
    assert summary["steps"] == 400
    # the run's wall time: the first segment up to its checkpoint at 200 (setup and compile included,
    # seconds) plus all of the second; the steps from 200 to the interruption are not counted
    assert first.step == 200 and first.meta["wall_s"] > 0
    assert summary["wall_s"] == pytest.approx(first.meta["wall_s"] + second, abs=0.5)
    assert_same_run(straight_run, tmp_path / "resumed", summary)


def test_resume_on_regenerated_data_is_refused_in_one_line(tiny_dataset_id, tmp_path, capsys):
    """A stand-in regenerated on another machine can hold other numbers under the same id."""
    dataset_id = "fdivrl-test/regenerated-v1"
    copy_dataset(tiny_dataset_id, dataset_id)
    try:
        out = tmp_path / "run"
        argv = ["train", "--dataset", dataset_id, "--steps", "20", "--chunk", "10", "--eval-every", "20"]
        argv += ["--eval-episodes", "1", "--batch-size", "32", "--out", str(out), "--quiet"]
        assert cli(argv, capsys)[0] == 0
        stored = json.loads((out / "config.json").read_text())["identity"]["data_fingerprint"]
        assert json.loads((out / "summary.json").read_text())["identity"] == {"data_fingerprint": stored}
        # same id and shapes, other episodes and reference score: the fingerprint, not the score, is named
        make_tiny_antmaze(dataset_id, seed=1, ref_max_score=2.0, overwrite=True)
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        code, _, err = cli([*argv, "--steps", "30", "--resume"], capsys)
        assert code != 0 and len(err.strip().splitlines()) == 1, err
        assert f"data fingerprint was {stored} and is now" in err
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    finally:
        shutil.rmtree(datasets_root() / dataset_id, ignore_errors=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_checkpoints_the_chunk_it_came_in_and_resume_loses_nothing(
    tiny_dataset_id, straight_run, tmp_path, signum
):
    cfg = small_config(tiny_dataset_id)
    handlers = {s: signal.getsignal(s) for s in stop.SIGNALS}

    def signal_at_300(step: int) -> None:
        if step == 300:  # the scheduled checkpoints are at 200 and 400
            os.kill(os.getpid(), signum)

    with pytest.raises(stop.StopRequested, match=f"{signum.name} at step 300 of 400: checkpoint saved"):
        train(cfg, tmp_path / "stopped", on_chunk=signal_at_300)
    assert {s: signal.getsignal(s) for s in stop.SIGNALS} == handlers  # the process's own handlers are back
    assert latest_checkpoint(tmp_path / "stopped" / "checkpoints").step == 300
    assert not (tmp_path / "stopped" / "summary.json").exists()
    summary = train(cfg, tmp_path / "stopped", resume=True)
    assert_same_run(straight_run, tmp_path / "stopped", summary)


def test_a_stop_signal_in_the_last_chunk_lets_the_run_finish_then_still_stops(tiny_dataset_id, tmp_path):
    # a sweep must not take a request to stop as answered because the run it came in was ending anyway
    def signal_at_end(step: int) -> None:
        if step == 200:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(stop.StopRequested, match=r"SIGTERM during the last chunk of .*: the run finished first"):
        train(small_config(tiny_dataset_id, steps=200), tmp_path / "run", on_chunk=signal_at_end)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_a_second_signal_stops_at_once():
    with stop.deferred_stop() as requested:
        assert requested() is None
        handler = signal.getsignal(signal.SIGTERM)  # called directly: a delivered signal's exception
        handler(signal.SIGINT, None)  # could surface anywhere, even in a gc callback that drops it
        assert requested() == "SIGINT"
        with pytest.raises(stop.Interrupted):
            handler(signal.SIGTERM, None)
    assert signal.getsignal(signal.SIGTERM) is not handler


def test_cli_train_stopped_by_sigterm_exits_130_with_one_line_and_resumes(
    tiny_dataset_id, tmp_path, capsys, monkeypatch
):
    from fdivrl.cli.common import RichReporter

    advance = RichReporter.advance

    def advance_then_term(self, step: int, *args) -> None:
        advance(self, step, *args)
        if step == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RichReporter, "advance", advance_then_term)
    out = tmp_path / "run"
    argv = ["train", "--dataset", tiny_dataset_id, "--steps", "30", "--chunk", "10", "--eval-every", "30"]
    argv += ["--eval-episodes", "1", "--batch-size", "32", "--out", str(out), "--quiet"]
    code, sout, err = cli(argv, capsys)
    assert code == 130 and len(err.strip().splitlines()) == 1, (sout, err)
    assert "SIGTERM at step 10 of 30: checkpoint saved" in err and "--resume" in err
    assert latest_checkpoint(out / "checkpoints").step == 10
    code, sout, _ = cli(["status", str(out), "--json"], capsys)  # what `fdivrl status` makes of a real stopped run
    row = json.loads(sout)
    assert (code, row["state"], row["step"], row["checkpoint"], row["steps"]) == (0, "stopped", 10, 10, 30)
    assert row["activity"]["status"] in ("active", "inactive") and row["holder"] == ""
    monkeypatch.setattr(RichReporter, "advance", advance)
    code, _, err = cli([*argv, "--resume"], capsys)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["steps"] == 30
    code, sout, _ = cli(["status", str(out), "--json"], capsys)
    row = json.loads(sout)
    assert (row["state"], row["step"], row["eval_step"], row["metric"]) == ("finished", 30, 30, "d4rl_score")


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_dataset_id, tmp_path):
    cfg = small_config(tiny_dataset_id, steps=2000, critic_lr=1e30, value_lr=1e30, actor_lr=1e30)
    with pytest.raises(TrainingDiverged, match="diverged at step") as info:
        train(cfg, tmp_path / "nan")
    step = int(str(info.value).split("diverged at step ")[1].split(":")[0])
    saved = [s for s, _ in list_checkpoints(tmp_path / "nan" / "checkpoints")]
    assert all(s < step for s in saved)
    assert not (tmp_path / "nan" / "summary.json").exists()


def test_config_validation_errors_are_one_line(tiny_dataset_id, capsys):
    for argv, needle in (
        (["train", "--dataset", tiny_dataset_id, "--ema", "2"], "--ema must lie in (0, 1]"),
        (["train", "--dataset", tiny_dataset_id, "--lower-clip", "99"], "lower_clip must lie in [0, max_clip=50"),
        (["train", "--dataset", tiny_dataset_id, "--chunk", "0"], "--chunk must be >= 1"),
    ):
        code, _, err = cli(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_default_out_names_dataset_per_type_and_seeds():
    cfg = C.with_overrides(C.preset_config("quick", C.DEFAULT_DATASET, "js"), top={"seeds": (0, 1, 2)})
    from fdivrl.training.loop import default_out

    assert default_out(cfg) == Path("runs/D4RL_antmaze_umaze-v1/JS-quick-s0x3")
    online = C.preset_config("quick", None, "KL", mode="online", env="Hopper-v5")
    assert default_out(online) == Path("runs/Hopper-v5/KL-online-quick-s0")  # online runs name the mode
    finetune = C.preset_config("quick", C.DEFAULT_DATASET, "KL", mode="finetune")
    assert default_out(finetune) == Path("runs/D4RL_antmaze_umaze-v1/KL-finetune-quick-s0")
    assert cfg.divergence.beta == 2.0  # XQL's umaze temperature
    assert cfg.divergence.min_clip == cfg.replay.min_clip == 0.5  # JS keeps its own floor, not ROER's 10
    kl = C.preset_config("quick", C.DEFAULT_DATASET, "KL")
    assert kl.divergence.min_clip == kl.replay.min_clip == 1.0 and kl.replay.lower_clip == 1.0  # its lower clip
    roer = C.preset_config("roer", C.DEFAULT_DATASET, "KL")
    assert roer.divergence.min_clip == roer.replay.min_clip == 10.0 and roer.replay.ema == 0.01  # ROER umaze
    assert roer.steps == 1_000_000 and kl.replay.ema == C.QUICK_OFFLINE_EMA
    per = C.preset_config("roer", C.DEFAULT_DATASET, "PER")
    assert per.replay.min_clip == 0.0 and per.replay.scheme == "direct"  # ROER's code: no floor, no EMA
    chi2 = C.preset_config("quick", "D4RL/antmaze/medium-play-v1", "chi2")
    assert chi2.divergence.min_clip == chi2.replay.min_clip == 1.0 and chi2.divergence.beta == 0.8  # κ = 0: β kept
    sigmoid = C.preset_config("quick", "D4RL/antmaze/medium-play-v1", "sigmoid")
    assert sigmoid.divergence.min_clip == sigmoid.replay.lower_clip == 0.0  # bounded weights keep 0
    exact = C.preset_config("quick", "D4RL/antmaze/medium-play-v1", "JS-exact")
    assert exact.divergence.beta == 3 * 0.8 and exact.replay.lower_clip == 1.0  # beta_scale 3, unbounded
    assert cfg.reward_shift == -1.0


def test_stop_diverged_ends_the_run_at_the_step_every_seed_diverged_and_a_resume_without_it_goes_on(
    tiny_dataset_id, tmp_path, capsys, monkeypatch
):
    # the tiny dataset has no suite, so no reward bounds: give it a range no mean Q can be near
    monkeypatch.setattr(values, "bounds_of", lambda task, config: (50.0, 51.0))
    out = tmp_path / "run"
    argv = ["train", "--dataset", tiny_dataset_id, "--per-type", "JS", "--steps", "40", "--chunk", "10"]
    argv += ["--eval-every", "20", "--eval-episodes", "1", "--seeds", "2", "--out", str(out), "--quiet", "--json"]
    code, stdout, err = cli([*argv, "--stop-diverged"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["status"] == "finished" and summary["steps"] == 10
    assert summary["stopped_early"]["step"] == 10 and summary["stopped_early"]["of"] == 40
    assert "seed 0 at step 10, seed 1 at step 10" in summary["stopped_early"]["reason"]
    assert summary["values"]["status"] == "diverged"
    # the final evaluation and checkpoint are taken where it stopped
    assert [(e["step"], e["seed"]) for e in read_jsonl(out / "eval.jsonl")] == [(10, 0), (10, 1)]
    assert summary["final_eval"]["per_seed"][0]["step"] == 10
    assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [10]
    (row,) = compare.runs_rows(compare.compare(tmp_path, ("JS",), reps=50))[1]
    assert row[2].endswith("(stopped at step 10: every seed diverged)")
    assert summary["stopped_early"]["extra_evaluation"] is True  # step 10 is not on the every-20 schedule
    # asked again with the same rule, it is done: nothing more is trained
    code, stdout, err = cli([*argv, "--resume", "--stop-diverged"], capsys)
    assert code == 0, err
    assert json.loads(stdout) == summary and read_jsonl(out / "metrics.jsonl")[-1]["step"] == 10
    # the option is not part of the config: resuming without it is the same run, trained to its end,
    # and the stop's off-schedule evaluation goes (an online score would average it in)
    code, stdout, err = cli([*argv, "--resume"], capsys)
    assert code == 0, err
    again = json.loads(stdout)
    assert again["steps"] == 40 and "stopped_early" not in again
    assert [(m["step"], m["seed"]) for m in read_jsonl(out / "metrics.jsonl")][-2:] == [(40, 0), (40, 1)]
    assert sorted({e["step"] for e in read_jsonl(out / "eval.jsonl")}) == [20, 40]
    assert json.loads((out / "summary.previous.json").read_text())["stopped_early"]["step"] == 10


def test_stop_diverged_leaves_a_run_whose_values_stay_in_range_alone(tiny_dataset_id, tmp_path, monkeypatch):
    monkeypatch.setattr(values, "bounds_of", lambda task, config: (-1e6, 1e6))
    summary = train(small_config(tiny_dataset_id, steps=200), tmp_path / "run", stop_diverged=True)
    assert summary["steps"] == 200 and "stopped_early" not in summary and summary["values"]["status"] == "bounded"


def test_the_divergence_watch_skips_pretraining_and_waits_for_every_seed():
    from fdivrl.training.loop import _DivergenceWatch

    # a finetune run's pretraining (steps <= 50 here) is not part of its steps: its rows do not count
    watch = _DivergenceWatch((-100.0, 0.0), 50, [{"step": 40, "seed": 0, "q_mean": 1e4}])
    assert watch.diverged == {}
    rows = [{"step": 60, "seed": 0, "q_mean": 1e4}, {"step": 60, "seed": 1, "q_mean": -5.0}]
    assert watch.update(rows, (0, 1)) is None
    reason = watch.update([{"step": 70, "seed": 1, "q_mean": -1e4}], (0, 1))
    assert reason.startswith("stopped early: every seed's values diverged (seed 0 at step 60, seed 1 at step 70;")


def test_clip_targets_trains_within_the_datas_return_range(tiny_dataset_id, tmp_path, capsys):
    """--clip-targets reaches the learner with the range of the data's rewards (AntMaze's r − 1 ∈ {−1, 0}:
    [−100, 0] at γ = 0.99), and metrics.jsonl says how often the clip cut."""
    mode = OfflineMode(C.with_overrides(small_config(tiny_dataset_id), learner={"clip_targets": True}))
    assert mode.learner.target_bounds == pytest.approx((-100.0, 0.0))
    out = tmp_path / "run"
    argv = ["train", "--dataset", tiny_dataset_id, "--steps", "20", "--chunk", "10", "--eval-every", "20"]
    code, _, err = cli([*argv, "--eval-episodes", "1", "--clip-targets", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["config"]["learner"]["clip_targets"] is True
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(0.0 <= r["target_clip_frac"] <= 1.0 for r in rows)
    last = rows[-1]["target_clip_frac"]  # the summary keeps it, though this dataset's Q is not checked
    assert json.loads((out / "summary.json").read_text())["values"]["target_clip_frac"] == [last]
