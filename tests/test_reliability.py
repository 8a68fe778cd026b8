"""Issue 15: the ways a result was lost, misreported or crashed on bad input, one test per case.

Each test reproduces what a hostile but realistic user did; the fixed behaviour is the right result,
or one clear line on stderr and a non-zero exit before any work starts.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_bench import cli
from test_compare import TASK_A, TASK_B, write_run  # tests/ is on sys.path (rootdir conftest)
from tiny_datasets import copy_dataset

from fdivrl.analysis import bench as B
from fdivrl.analysis import compare as K
from fdivrl.analysis import plots, stats
from fdivrl.cli.app import main
from fdivrl.data import datasets as minari_data
from fdivrl.runs import rundir as runs

T = ["--steps", "200", "--chunk", "100", "--eval-every", "200", "--eval-episodes", "1", "--quiet"]


def one_line_error(code: int, out: str, err: str, *needles: str) -> str:
    assert code not in (0, None), (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tiny_dataset_id, tmp_path_factory) -> Path:
    """One finished 200-step offline run (KL, one seed); tests work on copies of it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = cli(["train", "--dataset", tiny_dataset_id, *T, "--out", str(out)])
    assert code == 0, err
    return out


# ---------------------------------------------------------------------------------- 1. lost score on resume


@pytest.mark.parametrize("damage", ["removed", "garbled"])
def test_resume_rebuilds_a_lost_summary_from_the_logs_and_checkpoint(finished_run, tiny_dataset_id, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = json.loads((run / runs.SUMMARY_FILE).read_text())
    assert before["final_eval"]["per_seed"]
    if damage == "removed":
        (run / runs.SUMMARY_FILE).unlink()
    else:
        (run / runs.SUMMARY_FILE).write_text('{"status": "fini')
    code, out, err = cli(["train", "--dataset", tiny_dataset_id, *T, "--out", str(run), "--resume", "--json"])
    assert code == 0, err
    after = json.loads(out)
    assert after == json.loads((run / runs.SUMMARY_FILE).read_text())
    assert after["status"] == "finished" and after["steps"] == before["steps"]
    assert after["final_eval"] == before["final_eval"]  # the final evaluation, read back from eval.jsonl
    assert after["activity"] == before["activity"]


def test_bench_repairs_a_run_that_lost_its_summary(benched, tiny_dataset_id):
    results, report = benched
    (run,) = {Path(o["run"]) for o in report["outcomes"]}
    before = json.loads((run / runs.SUMMARY_FILE).read_text())
    (run / runs.SUMMARY_FILE).unlink()
    code, report, err = bench(tiny_dataset_id, results, "KL")
    assert code == 0, err
    assert [o["status"] for o in report["outcomes"]] == ["finished"]
    assert json.loads((run / runs.SUMMARY_FILE).read_text())["final_eval"] == before["final_eval"]
    (row,) = report["table"]["rows"]
    assert row["per_types"]["KL"]["seeds"] == 1 and "d4rl_score" in row["per_types"]["KL"]


# ---------------------------------------------------------------------------------- 2. NaN scores in compare


def test_compare_skips_a_run_with_a_nan_score_and_says_so(tmp_path):
    root = tmp_path / "results"
    write_run(root / "kl", "KL", TASK_A, {0: 10.0, 1: 30.0})
    write_run(root / "kl-nan", "KL", TASK_B, {0: 20.0, 1: math.nan})
    write_run(root / "js", "JS", TASK_A, {0: 0.0, 1: 5.0})
    write_run(root / "js-b", "JS", TASK_B, {0: 0.0, 1: 5.0})
    c = K.compare(root, ("KL", "JS"), reps=200)
    reasons = {s.path.name: s.reason for s in c.skipped}
    assert reasons["kl-nan"] == "non-finite d4rl_score in summary.json (seed 1: nan)"
    assert TASK_B not in c.aggregate_tasks and "KL" not in c.scores[TASK_B]
    for by_type in c.per_task.values():
        for est in by_type.values():
            assert all(math.isfinite(e.value) for e in est.values())
    code, out, err = cli(["compare", "KL", "JS", "--results", str(root), "--out", str(tmp_path / "o"), "--reps", "200"])
    assert code == 0, err
    assert "non-finite d4rl_score" in out and "nan [" not in out


# ---------------------------------------------------------------------------------- 3. NaN in the flat cache


def test_a_nan_in_the_flattened_cache_is_not_trained_on(tiny_dataset_id, minari_root):
    dataset_id = "fdivrl-test/nancache-v1"
    copy_dataset(tiny_dataset_id, dataset_id)
    try:
        clean, info = minari_data.load(dataset_id)
        (cache,) = (Path(info.data_path).parent / minari_data.CACHE_DIR_NAME).glob("flat-*.npz")
        with np.load(cache) as npz:
            arrays = dict(npz)
        arrays["rewards"] = arrays["rewards"].copy()
        arrays["rewards"][3] = np.nan
        with cache.open("wb") as f:
            np.savez(f, **arrays)
        loaded, info = minari_data.load(dataset_id)
        assert not info.from_cache  # the poisoned cache was not used: rebuilt from the dataset
        for a, b in zip(loaded, clean, strict=True):
            np.testing.assert_array_equal(a, b)
        assert minari_data.load(dataset_id)[1].from_cache  # and rewritten clean
    finally:
        shutil.rmtree(minari_root / dataset_id, ignore_errors=True)


# ---------------------------------------------------------------------------------- 4. unusable paths


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading data or training."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the path was checked")

    monkeypatch.setattr(minari_data, "load", refuse)
    monkeypatch.setattr(B, "run_group", refuse)


@pytest.mark.parametrize("where", ["proc", "under-a-file", "long-name"])
def test_train_checks_out_before_work_starts(tiny_dataset_id, tmp_path, no_work, where):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out = {"proc": Path("/proc/fdivrl-x"), "under-a-file": a_file / "sub", "long-name": tmp_path / ("x" * 300)}[where]
    code, stdout, err = cli(["train", "--dataset", tiny_dataset_id, *T, "--out", str(out)])
    one_line_error(code, stdout, err, "--out")


def test_compare_and_bench_check_their_directories(tiny_dataset_id, tmp_path, no_work):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    root = tmp_path / "results"
    write_run(root / "kl", "KL", TASK_A, {0: 10.0})
    write_run(root / "js", "JS", TASK_A, {0: 0.0})
    code, out, err = cli(["compare", "KL", "JS", "--results", str(root), "--out", str(a_file), "--reps", "200"])
    one_line_error(code, out, err, "--out", "not a directory")
    code, out, err = cli(["compare", "KL", "JS", "--results", str(a_file)])
    one_line_error(code, out, err, "--results", "not a directory")
    argv = ["bench", "antmaze", "--per-types", "KL", "--seeds", "1", "--datasets", tiny_dataset_id, *T]
    code, out, err = cli([*argv, "--results", str(a_file)])
    one_line_error(code, out, err, "--results", "not a directory")
    code, out, err = cli([*argv, "--results", str(a_file / "sub")])
    one_line_error(code, out, err, "--results")


# ---------------------------------------------------------------------------------- 5. --eval-episodes 0


@pytest.mark.parametrize("command", ["train", "bench"])
def test_zero_eval_episodes_is_refused(tiny_dataset_id, tmp_path, no_work, command):
    argv = ["--steps", "200", "--eval-episodes", "0"]
    if command == "train":
        argv = ["train", "--dataset", tiny_dataset_id, *argv, "--out", str(tmp_path / "run")]
    else:
        argv = ["bench", "antmaze", "--datasets", tiny_dataset_id, *argv, "--results", str(tmp_path / "r")]
    code, out, err = cli(argv)
    one_line_error(code, out, err, "--eval-episodes must be >= 1")
    assert not (tmp_path / "run" / runs.SUMMARY_FILE).exists()


# ---------------------------------------------------------------------------------- 6. a run without config.json


def test_compare_lists_a_run_directory_without_config_json(tmp_path):
    root = tmp_path / "results"
    write_run(root / "kl", "KL", TASK_A, {0: 10.0, 1: 20.0})
    write_run(root / "js", "JS", TASK_A, {0: 0.0, 1: 5.0})
    lost = write_run(root / "lost", "JS", TASK_A, {2: 50.0, 3: 60.0})
    (lost / runs.CONFIG_FILE).unlink()
    c = K.compare(root, ("KL", "JS"), reps=200)
    reasons = {s.path.name: s.reason for s in c.skipped}
    assert reasons == {"lost": "corrupt: no config.json (the run's config is missing)"}
    code, out, err = cli(["compare", "KL", "JS", "--results", str(root), "--out", str(tmp_path / "o"), "--reps", "200"])
    assert code == 0, err
    assert "no config.json" in out


# ---------------------------------------------------------------------------------- 7. confidence from one seed


def test_one_seed_gives_no_interval_in_tables_and_figure(tmp_path):
    root = tmp_path / "results"
    for name in ("KL", "JS", "JS-exact", "uniform"):
        write_run(root / name, name, TASK_A, {0: {"KL": 80.0, "JS": 20.0, "JS-exact": 50.0, "uniform": 10.0}[name]})
    c = K.compare(root, ("KL", "JS", "JS-exact", "uniform"), reps=200)
    p = c.improvement["KL > JS"][K.AGGREGATE]
    assert p.value == 1.0 and not p.has_interval and p.n == 1
    assert K.fmt(p) == "1 (n = 1: no interval)"
    headers, stat_rows = K.statistics_rows(c)
    first = headers.index("mean")  # after the run count and the priorities and values verdicts
    assert all("n = 1: no interval" in cell for row in stat_rows for cell in row[first:])
    assert all("[" not in cell for row in stat_rows + K.improvement_rows(c)[1] for cell in row[1:])
    report = c.to_json()
    assert report["probability_of_improvement"]["KL > JS"][K.AGGREGATE] == {"value": 1.0, "low": None, "high": None}
    json.dumps(report, allow_nan=False)  # valid JSON: no NaN
    curves = K.learning_curves(c, reps=200)
    assert np.isnan(curves[TASK_A]["KL"][1][1:]).all()  # no band
    title = plots.learning_curves_title(curves)
    assert "n = 1: no interval" in title and "95% bootstrap CI" not in title
    files = K.write_files(c, tmp_path / "out", reps=200)
    md = next(f for f in files if f.name == "stats.md").read_text()
    assert "n = 1: no interval" in md and "1 [1, 1]" not in md
    csv_text = next(f for f in files if f.name == "stats.csv").read_text()
    assert "nan" not in csv_text.lower()
    code, out, err = cli(["compare", "KL", "JS", "--results", str(root), "--out", str(tmp_path / "o"), "--reps", "200"])
    assert code == 0, err
    assert "n = 1: no interval" in out and "[1, 1]" not in out


def test_two_seeds_still_get_intervals():
    est = stats.aggregate_estimates([np.array([1.0, 3.0])], reps=200)
    assert all(e.has_interval and e.n == 2 for e in est.values())
    assert stats.improvement_estimate([np.array([1.0])], [np.array([0.0, 2.0])], reps=200).n == 1
    assert plots.learning_curves_title({"t": {"KL": (np.arange(2), np.ones((3, 2)))}}) == (
        "learning curves: mean over seeds, 95% bootstrap CI"
    )


# ---------------------------------------------------------------------------------- smaller ones


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--steps", str(2**63 - 1)], "--steps must be <= 2147483647"),
        (["--steps", str(2**31)], "--steps must be <= 2147483647"),
        (["--batch-size", str(2**40)], "--batch-size must be <= 2147483647"),
        (["--seed", str(2**31 - 1), "--seeds", "2"], "--seed"),
    ],
)
def test_options_beyond_the_step_counter_are_refused(tiny_dataset_id, tmp_path, no_work, extra, needle):
    code, out, err = cli(["train", "--dataset", tiny_dataset_id, *extra, "--out", str(tmp_path / "run")])
    one_line_error(code, out, err, needle)


def test_online_updates_beyond_the_step_counter_are_refused(tmp_path):
    argv = ["train", "--mode", "online", "--env", "Pendulum-v1", "--steps", str(2**30), "--utd", "4"]
    code, out, err = cli([*argv, "--out", str(tmp_path / "run")])
    one_line_error(code, out, err, "2147483647", "--utd")


def test_generating_the_default_dataset_says_how_long_first(tmp_path, monkeypatch):
    from fdivrl.cli import data as cli_module
    from fdivrl.data.antmaze import walker
    from fdivrl.errors import FdivrlError

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    monkeypatch.setattr(walker, "load_walker", lambda *a, **k: object())
    told: list[str] = []
    err = io.StringIO()

    def make_standin(*args, **kwargs):
        told.append(err.getvalue())
        raise FdivrlError("stopped by the test")

    monkeypatch.setattr(cli_module, "make_standin", make_standin)
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit):
        main(["train", "--mode", "finetune", "--steps", "1000", "--out", str(tmp_path / "run")])
    (before,) = told
    assert "1,000,000 steps" in before and "about 8 minutes on 2 CPU cores" in before
    assert "--steps" in before  # says the run's --steps does not shorten it


@pytest.fixture(scope="module")
def benched(tiny_dataset_id, tmp_path_factory) -> tuple[Path, dict]:
    """`fdivrl bench --per-types KL,kl`: one seed on the tiny dataset."""
    results = tmp_path_factory.mktemp("bench")
    code, report, err = bench(tiny_dataset_id, results, "KL,kl")
    assert code == 0, err
    return results, report


def bench(dataset: str, results: Path, per_types: str, *extra: str) -> tuple[int, dict, str]:
    argv = ["bench", "antmaze", "--per-types", per_types, "--seeds", "1", "--datasets", dataset, *T]
    code, out, err = cli([*argv, "--results", str(results), *extra, "--json"])
    return code, json.loads(out) if out.strip() else {}, err


def test_bench_runs_a_repeated_per_type_once(benched):
    _, report = benched
    assert [(o["per_type"], o["status"]) for o in report["outcomes"]] == [("KL", "finished")]
    assert report["table"]["rows"][0]["per_types"].keys() == {"KL"}


def test_data_antmaze_names_the_overwrite_option(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    (tmp_path / "datasets" / "fdivrl" / "antmaze" / "umaze-v1" / "data").mkdir(parents=True)
    code, out, err = cli(["data", "antmaze", "umaze", "--walker-file", str(tmp_path / "none.npz")])
    line = one_line_error(code, out, err, "already exists", "--overwrite")
    assert "pass overwrite" not in line


def test_bench_does_not_suggest_a_rerun_that_cannot_help(tiny_dataset_id, tmp_path):
    results = tmp_path / "results"
    (group,) = B.plan([B.Target("x", tiny_dataset_id, "local")], ["KL"], [0], "quick", "offline", results, steps=200)
    group.out.mkdir(parents=True)
    (group.out / runs.CONFIG_FILE).write_text("garbage {")
    argv = ["bench", "antmaze", "--per-types", "KL", "--seeds", "1", "--datasets", tiny_dataset_id, *T]
    code, out, err = cli([*argv, "--results", str(results)])
    assert code == 1, err
    out = " ".join(out.split())  # rich wraps at the terminal's width, wherever the tmp path's length puts it
    assert "config.json is unreadable" in out and "move the directory away" in out
    assert "run the same command again to retry" not in out
    assert "cannot be fixed by running the same command again" in out
