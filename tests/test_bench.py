"""`fdivrl bench`: suites as data, dataset resolution, a tiny sweep end to end (local and Ray backends)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fdivrl import config as C
from fdivrl import suites
from fdivrl.analysis import bench as B
from fdivrl.cli.app import main
from fdivrl.errors import ConfigError, DatasetError
from fdivrl.runs import rundir as runs
from fdivrl.runs.lock import RunLock
from fdivrl.runs.provenance import usable_cpus

TINY = ["--steps", "20", "--chunk", "10", "--eval-every", "10", "--eval-episodes", "1", "--quiet"]


def cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; usable from module-scoped fixtures, unlike capsys."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, out.getvalue(), err.getvalue()


def sweep(dataset: str, results: Path, per_types: str, *extra: str) -> tuple[int, dict, str]:
    argv = ["bench", "antmaze", "--per-types", per_types, "--seeds", "2", "--datasets", dataset]
    code, out, err = cli([*argv, "--results", str(results), *TINY, *extra, "--json"])
    return code, json.loads(out) if out.strip() else {}, err


@pytest.fixture(scope="module")
def swept(tiny_dataset_id, tmp_path_factory) -> tuple[Path, dict]:
    """KL and JS × seeds 0, 1 on the tiny dataset, local backend; the report of that first run."""
    results = tmp_path_factory.mktemp("bench")
    code, report, err = sweep(tiny_dataset_id, results, "KL,JS")
    assert code == 0, err
    return results, report


# ---------------------------------------------------------------------------------- suites as data


def test_presets_take_the_suites_hyperparameters():
    """The suites are where per-task settings live: the roer preset reproduces them for KL exactly
    (min_clip is ROER's floor, which only the roer preset applies); JS-exact's β is 3× (its beta_scale)."""
    antmaze, mujoco = B.load_suite("antmaze"), B.load_suite("mujoco")
    assert [t.task for t in antmaze.tasks] == list(C.ANTMAZE_TASKS)
    assert antmaze.modes == ("offline", "finetune") and antmaze.metric == "d4rl_score"
    assert [t.env for t in mujoco.tasks] == ["Ant-v5", "HalfCheetah-v5", "Hopper-v5", "Humanoid-v5", "Walker2d-v5"]
    assert mujoco.modes == ("online",) and mujoco.metric == "mean_return"
    for suite in (antmaze, mujoco):
        for t in suite.tasks:
            assert set(t.hyperparameters) == set(suite.modes), t.task
            for mode, hp in t.hyperparameters.items():
                online = mode == "online"
                preset = C.preset_config("roer", None if online else t.dataset, "KL", mode=mode, env=t.env)
                assert {k: getattr(preset.divergence, k) for k in hp} == hp, (t.task, mode)
                js = C.preset_config("quick", None if online else t.dataset, "JS-exact", mode=mode, env=t.env)
                assert js.divergence.beta == 3 * hp["beta"] and js.divergence.min_clip == 1.0, (t.task, mode)
    for t in antmaze.tasks:
        assert t.dataset == f"D4RL/antmaze/{t.task}-v1" and t.standin == f"fdivrl/antmaze/{t.task}-v1"
    hopper = mujoco.tasks[2].hyperparameters["online"]
    assert (hopper["beta"], hopper["min_clip"], hopper["max_clip"]) == (0.4, 10.0, 100.0)  # ROER Table 5
    targets, missing = B.resolve_targets(mujoco, "online")
    assert not missing and targets[2] == B.Target("Hopper", "Hopper-v5", "env")


def test_reference_scores_cite_a_source_per_column():
    raw = suites.read("reference_scores")
    tasks = {"antmaze": set(C.ANTMAZE_TASKS), "mujoco": {t.task for t in B.load_suite("mujoco").tasks}}
    for suite, table in raw.items():
        assert table["unit"]
        for column in table["columns"]:
            assert column["source"] and column["modes"], column["name"]
            assert set(column["scores"]) <= tasks[suite], column["name"]
    names = [c["name"] for c in B.reference_columns("antmaze", "offline")]
    assert names == ["IQL", "XQL", "ReBRAC", "ROER"]
    xql = next(c for c in raw["antmaze"]["columns"] if c["name"] == "XQL")
    assert xql["scores"]["umaze"] == 93.8 and xql["scores"]["large-diverse"] == 49.0


def test_groups_take_the_suites_settings_and_keep_each_per_types_own_floor():
    target = B.Target("umaze", "D4RL/antmaze/umaze-v1", "D4RL")
    kl = B.group_config(target, "KL", "quick", "offline", (0, 1), steps=30)
    js = B.group_config(target, "js", "quick", "offline", (0, 1), steps=30)
    assert (kl.divergence.beta, kl.replay.max_clip, kl.seeds, kl.steps) == (2.0, 50.0, (0, 1), 30)  # the suite's
    assert kl.divergence.min_clip == kl.replay.min_clip == 1.0  # quick: KL's own lower clip
    roer = B.group_config(target, "KL", "roer", "offline", (0, 1), steps=30)
    assert roer.divergence.min_clip == roer.replay.min_clip == 10.0  # the suite's ROER floor, roer preset only
    assert js.per_type == "JS" and js.divergence.min_clip == 0.5  # ROER's floor would pin JS weights at 10
    roer_js = B.group_config(target, "js", "roer", "offline", (0, 1), steps=30)
    assert roer_js.divergence.min_clip == 0.5
    exact = B.group_config(target, "JS-exact", "quick", "offline", (0,))
    assert exact.divergence.beta == 6.0  # β × beta_scale 3
    hopper = B.Target("Hopper", "Hopper-v5", "env")
    online = B.group_config(hopper, "KL", "quick", "online", (0,))
    assert (online.mode, online.env, online.dataset) == ("online", "Hopper-v5", None)
    assert (online.divergence.beta, online.replay.max_clip) == (0.4, 100.0)


# ---------------------------------------------------------------------------------- datasets


def test_real_data_first_then_standins_and_missing_ones_named(monkeypatch):
    present = ["D4RL/antmaze/medium-play-v1", "fdivrl/antmaze/umaze-v1", "fdivrl/antmaze/medium-play-v1"]
    monkeypatch.setattr(B.minari_data, "local_datasets", lambda: present)
    targets, missing = B.resolve_targets(B.load_suite("antmaze"), "offline")
    assert [(t.task, t.source, t.data) for t in targets] == [
        ("umaze", "fdivrl/antmaze/umaze-v1", "stand-in"),
        ("medium-play", "D4RL/antmaze/medium-play-v1", "D4RL"),
    ]
    assert len(missing) == 4 and "`fdivrl data antmaze large-play`" in missing[2]
    asked = ["fdivrl/antmaze/umaze-v1", "x/y-v0", "fdivrl/antmaze/large-play-v1"]
    chosen, gone = B.resolve_targets(B.load_suite("antmaze"), "offline", asked)
    assert [(t.task, t.data) for t in chosen] == [("umaze", "stand-in")]
    assert gone == [
        "x/y-v0 is not present locally: `minari download x/y-v0` on a machine with internet",
        "fdivrl/antmaze/large-play-v1 is not present locally: build it with `fdivrl data antmaze large-play`",
    ]


def test_no_dataset_at_all_is_one_line(tiny_dataset_id, tmp_path):
    code, _, err = cli(["bench", "antmaze", "--results", str(tmp_path)])
    assert code == 3 and len(err.strip().splitlines()) == 1, err
    assert "D4RL/antmaze/umaze-v1 is not present locally" in err and "fdivrl data antmaze large-diverse" in err
    code, _, err = cli(["bench", "mujoco", "--mode", "offline"])
    assert code == 2 and "--mode 'offline' is not valid; choose one of: online" in err


# ---------------------------------------------------------------------------------- the sweep


def test_sweep_trains_every_group_then_skips_them(swept, tiny_dataset_id):
    results, first = swept
    assert [(o["per_type"], o["status"], o["data"]) for o in first["outcomes"]] == [
        ("KL", "finished", "local"),
        ("JS", "finished", "local"),
    ]
    for o in first["outcomes"]:
        summary = json.loads((Path(o["run"]) / runs.SUMMARY_FILE).read_text())
        assert summary["status"] == "finished" and summary["seeds"] == [0, 1] and summary["steps"] == 20
        assert Path(o["log"]).read_text().strip().endswith("s")  # "finished in ... s"

    code, again, err = sweep(tiny_dataset_id, results, "KL,JS")
    assert code == 0, err
    assert [o["status"] for o in again["outcomes"]] == ["skipped", "skipped"]
    assert again["table"] == first["table"]

    row = first["table"]["rows"][0]
    assert row["dataset"] == tiny_dataset_id and row["data"] == "local"
    for p in ("KL", "JS"):
        cell = row["per_types"][p]
        assert cell["seeds"] == 2 and 0 <= cell["d4rl_score"]["value"] <= 100
        assert "normalized_score_x100" in cell
    assert set(row["published"]) == {"IQL", "XQL", "ReBRAC", "ROER"}  # columns present, no task match: None
    stem = results / "bench-antmaze-offline"
    assert sorted(map(str, again["files"])) == sorted(str(stem.with_suffix(s)) for s in (".csv", ".json", ".md"))
    md = stem.with_suffix(".md").read_text()
    assert "KL D4RL" in md and "JS minari" in md and "Kostrikov" in md and "local: " + tiny_dataset_id in md
    rows = list(csv.DictReader(stem.with_suffix(".csv").open()))
    assert {(r["per_type"], r["metric"]) for r in rows} == {
        (p, m) for p in ("KL", "JS") for m in ("d4rl_score", "normalized_score_x100")
    }

    # the human-readable form: a rich table and where the files are
    argv = ["bench", "antmaze", "--per-types", "KL,JS", "--seeds", "2", "--datasets", tiny_dataset_id]
    code, out, err = cli([*argv, "--results", str(results), *TINY])
    assert code == 0 and "skipped KL" in out and "D4RL-style score = 100 × success" in out, err


def test_a_table_is_made_again_from_finished_runs_on_a_machine_without_their_data(
    swept, tiny_dataset_id, tmp_path, monkeypatch
):
    results = tmp_path / "results"
    shutil.copytree(swept[0], results)
    (results / "bench-antmaze-offline.json").unlink()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "no-data"))  # the data is not on this machine
    code, report, err = sweep(tiny_dataset_id, results, "KL,JS")
    assert code == 0, err
    assert [o["status"] for o in report["outcomes"]] == ["skipped", "skipped"] and report["missing"] == []

    def cells(table: dict) -> list[dict]:  # the runs each cell was read from, apart
        return [
            {p: {k: v for k, v in c.items() if k != "runs"} for p, c in r["per_types"].items()} for r in table["rows"]
        ]

    assert cells(report["table"]) == cells(swept[1]["table"])
    (row,) = report["table"]["rows"]
    assert all(Path(run).resolve().parent.parent == results for c in row["per_types"].values() for run in c["runs"])
    assert json.loads((results / "bench-antmaze-offline.json").read_text()) == report["table"]
    # a group that still has to train needs the data: the dataset is left out, with the usual line
    code, _, err = sweep(tiny_dataset_id, results, "KL,JS,PER")
    assert code == 3 and f"{tiny_dataset_id} is not present locally" in err and len(err.strip().splitlines()) == 1
    assert "(2 of the sweep's 3 runs on it are finished, these need it: PER-offline-quick-s0x2: train)" in err
    assert not (results / B._safe(tiny_dataset_id) / "PER-offline-quick-s0x2").exists()
    # the suite's own tasks: finished runs of a stand-in stand for it, real data that is here comes first
    suite = B.load_suite("antmaze")
    done = {"fdivrl/antmaze/umaze-v1", "D4RL/antmaze/medium-play-v1", "fdivrl/antmaze/medium-play-v1"}
    monkeypatch.setattr(B.minari_data, "local_datasets", lambda: ["fdivrl/antmaze/large-play-v1"])
    targets, missing = B.resolve_targets(suite, "offline", pending=lambda t: None if t.source in done else "")
    assert [(t.task, t.source, t.data) for t in targets] == [
        ("umaze", "fdivrl/antmaze/umaze-v1", "stand-in"),
        ("medium-play", "D4RL/antmaze/medium-play-v1", "D4RL"),
        ("large-play", "fdivrl/antmaze/large-play-v1", "stand-in"),
    ]
    assert len(missing) == 3


def test_a_dry_run_says_what_the_sweep_would_do_and_writes_nothing(swept, tiny_dataset_id, tmp_path, monkeypatch):
    results = tmp_path / "results"
    shutil.copytree(swept[0], results)
    js = Path(swept[1]["outcomes"][1]["run"].replace(str(swept[0]), str(results)))
    (js / runs.SUMMARY_FILE).unlink()  # JS interrupted: it would be resumed

    def snapshot() -> list[tuple[Path, int, int]]:
        return sorted((f, f.stat().st_mtime_ns, f.stat().st_size) for f in results.rglob("*"))

    before = snapshot()
    code, report, err = sweep(tiny_dataset_id, results, "KL,JS,PER", "--dry-run")
    assert code == 0, err
    assert [(g["per_type"], g["state"], g["seeds"]) for g in report["groups"]] == [
        ("KL", "finished", [0, 1]),
        ("JS", "resume", [0, 1]),
        ("PER", "train", [0, 1]),
    ]
    assert report["missing"] == [] and snapshot() == before  # not even the table is rewritten
    # a script asks it whether a dataset must be made first: only when a group still has to train on it
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "no-data"))
    assert sweep(tiny_dataset_id, results, "KL", "--dry-run")[0] == 0
    code, _, err = sweep(tiny_dataset_id, results, "KL,JS", "--dry-run")
    assert code == 3 and "is not present locally" in err
    argv = ["bench", "antmaze", "--per-types", "KL", "--seeds", "2", "--datasets", tiny_dataset_id, "--dry-run"]
    code, out, err = cli([*argv, "--results", str(results), *TINY])
    assert code == 0 and "nothing was trained" in out and "finished" in out, err


def test_compare_on_the_sweep_writes_tables_and_plots(swept):
    results = swept[0]
    code, out, err = cli(["compare", "KL", "JS", "--results", str(results), "--reps", "200", "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert sorted(u["per_type"] for u in report["used"]) == ["JS", "KL"] and report["skipped"] == []
    (task,) = report["scores"]
    assert {p: len(v) for p, v in report["scores"][task].items()} == {"KL": 2, "JS": 2}
    assert set(report["statistics"]["all tasks"]["KL"]) == {"mean", "median", "iqm", "optimality_gap"}
    for name in ("stats.md", "stats.csv", "stats.json", "learning_curves.png", "priority_weights.png"):
        assert (results / "compare" / "KL_vs_JS" / name).stat().st_size > 0, name


def test_changed_settings_are_not_skipped_and_failures_do_not_stop_the_sweep(swept, tiny_dataset_id, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(swept[0], results)
    kl_run = Path(swept[1]["outcomes"][0]["run"].replace(str(swept[0]), str(results)))
    (kl_run / runs.CONFIG_FILE).write_text("{ not json")  # a corrupt run directory
    code, report, _ = sweep(tiny_dataset_id, results, "KL,JS")
    assert code == 1
    kl, js = report["outcomes"]
    assert kl["status"] == "failed" and "cannot read" in kl["message"]
    assert "Traceback" in Path(kl["log"]).read_text()
    assert js["status"] == "skipped"  # the sweep went on
    assert report["table"]["rows"][0]["per_types"]["KL"]["note"] == "failed"

    # a finished run is reused only with the very config this sweep would use
    overrides = {"steps": 20, "chunk": 10, "eval_every": 10, "eval_episodes": 1}
    target = B.Target(tiny_dataset_id, tiny_dataset_id, "local")
    same = B.plan([target], ["JS"], (0, 1), "quick", "offline", results, **overrides)[0]
    assert B.is_done(same)
    # a run recorded before a config field existed is the same setting at the value it trained with
    stored = json.loads((same.out / runs.CONFIG_FILE).read_text())
    del stored["config"]["learner"]["clip_targets"]
    (same.out / runs.CONFIG_FILE).write_text(json.dumps(stored))
    assert B.is_done(same) and B.planned_state(same) == "finished"
    for change in ({"eval_episodes": 2}, {"layer_norm": "critic,value"}, {"clip_targets": True}):
        other = B.plan([target], ["JS"], (0, 1), "quick", "offline", results, **{**overrides, **change})[0]
        assert other.out == same.out and not B.is_done(other)
        assert B.planned_state(other).startswith("conflict: config differs at ")  # what a dry run says
    longer = B.plan([target], ["JS"], (0, 1), "quick", "offline", results, **{**overrides, "steps": 40})[0]
    assert B.planned_state(longer) == "resume"  # a finished run trains on to more steps
    corrupt = B.plan([target], ["KL"], (0, 1), "quick", "offline", results, **overrides)[0]
    assert B.planned_state(corrupt) == "conflict: its config.json is unreadable"
    # ...and a run of other settings in the same directory fails in one line that says where else to go
    code, report, _ = sweep(tiny_dataset_id, results, "JS", "--layer-norm", "critic,value")
    (js,) = report["outcomes"]
    assert code == 1 and (js["status"], js["retry"]) == ("failed", False)
    assert "ConfigMismatch" in js["message"] and "config differs at learner.layer_norm" in js["message"]
    assert js["message"].endswith("another --results)")
    with pytest.raises(TypeError, match="unknown sweep overrides"):  # eval_episodes sets the final one too
        B.plan([target], ["JS"], (0, 1), "quick", "offline", results, final_eval_episodes=1)


def test_seeds_per_run_adds_seeds_beside_a_finished_run_and_the_cell_pools_them(swept, tiny_dataset_id, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(swept[0], results)
    argv = ["bench", "antmaze", "--per-types", "KL", "--datasets", tiny_dataset_id, "--results", str(results), *TINY]
    code, out, err = cli([*argv, "--seeds", "4", "--seeds-per-run", "2", "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert [(Path(o["run"]).name, o["status"]) for o in report["outcomes"]] == [
        ("KL-offline-quick-s0x2", "skipped"),  # seeds 0, 1: the finished run of the first sweep
        ("KL-offline-quick-s2x2", "finished"),
    ]
    cell = report["table"]["rows"][0]["per_types"]["KL"]
    assert cell["seeds"] == 4 and [Path(r).name for r in cell["runs"]] == [
        "KL-offline-quick-s0x2",
        "KL-offline-quick-s2x2",
    ]
    by_seed = {}
    for run in cell["runs"]:
        for e in json.loads((Path(run) / runs.SUMMARY_FILE).read_text())["final_eval"]["per_seed"]:
            by_seed[str(e["seed"])] = e["d4rl_score"]
    assert cell["per_seed"]["d4rl_score"] == by_seed and sorted(by_seed) == ["0", "1", "2", "3"]
    assert cell["d4rl_score"]["value"] == pytest.approx(sum(by_seed.values()) / 4)
    assert cell["priorities"] in ("active", "inactive")
    # runs of a cell that trained on other data (a regenerated stand-in) are not pooled, nor compared
    target = B.Target(tiny_dataset_id, tiny_dataset_id, "local")
    overrides = {"steps": 20, "chunk": 10, "eval_every": 10, "eval_episodes": 1}
    groups = B.plan([target], ["KL"], (0, 1, 2, 3), "quick", "offline", results, 2, **overrides)
    second = Path(report["outcomes"][1]["run"])
    config = json.loads((second / runs.CONFIG_FILE).read_text())
    assert len(config["identity"]["data_fingerprint"]) == 32
    (second / runs.CONFIG_FILE).write_text(json.dumps({**config, "identity": {"data_fingerprint": "0" * 32}}))
    other = B.score_table(B.load_suite("antmaze"), "offline", groups, []).rows[0][1]["KL"]
    assert other.seeds == 0 and "KL-offline-quick-s2x2 trained on other data than KL-offline-quick-s0x2" in other.note
    from fdivrl.analysis import compare as K

    used, skipped = K.select(B.results.scan(results), ("KL",), "d4rl_score")
    assert [u.path.name for u in used] == ["KL-offline-quick-s0x2"]
    assert [s.reason for s in skipped if s.path.name == "KL-offline-quick-s2x2"] == [
        f"trained on other data than {results / tiny_dataset_id.replace('/', '_') / 'KL-offline-quick-s0x2'} "
        "(data fingerprint)"
    ]
    (second / runs.CONFIG_FILE).write_text(json.dumps(config))
    # a cell is all of its seeds or none: with one run unfinished it says so instead of pooling the rest
    (second / runs.SUMMARY_FILE).unlink()
    assert [g.config.seeds for g in groups] == [(0, 1), (2, 3)]
    table = B.score_table(B.load_suite("antmaze"), "offline", groups, [])
    partial = table.rows[0][1]["KL"]
    assert partial.seeds == 0 and partial.estimates == {}
    assert partial.note == "KL-offline-quick-s2x2: unfinished (no summary.json)"
    code, _, err = cli([*argv, "--seeds", "4", "--seeds-per-run", "0"])
    assert code != 0 and len(err.strip().splitlines()) == 1 and "--seeds-per-run must be at least 1" in err


def test_a_run_held_by_another_process_is_reported_busy(swept, tiny_dataset_id, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(swept[0], results)
    js_run = Path(swept[1]["outcomes"][1]["run"].replace(str(swept[0]), str(results)))
    (js_run / runs.SUMMARY_FILE).unlink()  # unfinished: the sweep would resume it...
    before = (js_run / runs.METRICS_FILE).read_bytes()
    with RunLock(js_run / ".lock").acquire():  # ...but another bench holds it
        code, report, _ = sweep(tiny_dataset_id, results, "JS")
    assert code == 0 and report["outcomes"][0]["status"] == "busy"
    assert (js_run / runs.METRICS_FILE).read_bytes() == before


def test_a_stop_request_stops_the_whole_sweep_not_just_its_run(tiny_dataset_id, tmp_path, monkeypatch):
    from fdivrl.runs.stop import StopRequested
    from fdivrl.training import loop

    calls = []

    def stopped_train(cfg, out, **kwargs):
        calls.append(cfg.per_type)
        raise StopRequested(f"SIGTERM at step 10 of 20: checkpoint saved in {out}")

    monkeypatch.setattr(loop, "train", stopped_train)
    code, report, err = sweep(tiny_dataset_id, tmp_path / "results", "KL,JS")
    assert code == 130 and report == {} and calls == ["KL"]  # JS was not started
    assert len(err.strip().splitlines()) == 1 and "stopped: SIGTERM at step 10 of 20" in err


def two_cpus() -> None:
    if len(usable_cpus()) < 2:
        pytest.skip("--workers 2 needs two usable CPUs")


def test_workers_train_groups_at_once_each_pinned_to_its_own_cpus(swept, tiny_dataset_id, tmp_path):
    """--workers 2: KL and JS at the same time in two processes on disjoint CPUs, training what the
    one-process sweep trained (to float rounding: XLA splits sums over as many threads as CPUs)."""
    two_cpus()
    code, report, err = sweep(tiny_dataset_id, tmp_path, "KL,JS", "--workers", "2")
    assert code == 0, err
    assert [(o["per_type"], o["status"]) for o in report["outcomes"]] == [("KL", "finished"), ("JS", "finished")]
    cpus, pids = [], set()
    for outcome, before in zip(report["outcomes"], swept[1]["outcomes"], strict=True):
        run = Path(outcome["run"])
        log = Path(outcome["log"]).read_text().splitlines()[0]  # "<time> pid <pid> cpus <list>: ..."
        pids.add(log.split(" pid ")[1].split()[0])
        cpus.append(set(log.split(" cpus ")[1].split(":")[0].split(",")))
        assert json.loads((run / runs.CONFIG_FILE).read_text())["platform"]["cpus_usable"] == 1
        ours, theirs = (runs.read_jsonl(Path(r) / runs.METRICS_FILE) for r in (run, before["run"]))
        assert [(m["step"], m["seed"]) for m in ours] == [(m["step"], m["seed"]) for m in theirs]
        for m, n in zip(ours, theirs, strict=True):
            assert m.keys() == n.keys()
            assert all(m[k] == pytest.approx(n[k], rel=1e-4, abs=1e-6) for k in m), (m, n)
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert len(cpus[0]) == len(cpus[1]) == 1 and not cpus[0] & cpus[1]


def test_workers_share_one_accelerator_unless_the_user_chose_otherwise():
    from fdivrl.analysis.parallel import share_accelerator

    environ: dict[str, str] = {}
    share_accelerator(environ)
    assert environ == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # else the second worker cannot allocate
    environ = {"XLA_PYTHON_CLIENT_PREALLOCATE": "true"}
    share_accelerator(environ)
    assert environ == {"XLA_PYTHON_CLIENT_PREALLOCATE": "true"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--workers", "4096"], "--workers 4096: this process may use only"),
        (["--workers", "2", "--backend", "ray"], "--workers is for the local backend"),
    ],
)
def test_workers_the_machine_cannot_pin_are_refused_before_any_run(tiny_dataset_id, tmp_path, extra, message):
    code, report, err = sweep(tiny_dataset_id, tmp_path / "results", "KL", *extra)
    assert code != 0 and report == {} and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "results").exists()


def test_sigterm_to_a_workers_sweep_checkpoints_every_running_group(tiny_dataset_id, tmp_path):
    """The parent forwards the signal once; each group saves a checkpoint and the sweep stops with 130."""
    two_cpus()
    results = tmp_path / "results"
    argv = ["bench", "antmaze", "--per-types", "KL,JS", "--seeds", "1", "--datasets", tiny_dataset_id]
    argv += ["--steps", "1000000", "--chunk", "10", "--eval-every", "1000000", "--quiet", "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fdivrl", *argv, "--results", str(results)], stderr=subprocess.PIPE, text=True
    )
    metrics = [
        results / tiny_dataset_id.replace("/", "_") / f"{p}-offline-quick-s0x1" / runs.METRICS_FILE
        for p in ("KL", "JS")
    ]
    deadline = time.monotonic() + 240
    while not all(m.exists() and m.stat().st_size for m in metrics):  # both groups are training
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and len(err.strip().splitlines()) == 1, err
    assert err.count("SIGTERM at step") == 2 and "checkpoint saved" in err
    for m in metrics:
        assert list((m.parent / "checkpoints").glob("ckpt-*.npz")) and not (m.parent / runs.SUMMARY_FILE).exists()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # ray starts its processes with fork+exec
def test_ray_backend_on_a_local_instance(tiny_dataset_id, tmp_path):
    import ray  # CI installs the ray extra: a missing ray is a failure, not a skip

    code, report, err = sweep(tiny_dataset_id, tmp_path, "uniform", "--backend", "ray")
    assert code == 0, err
    assert not ray.is_initialized()  # the instance the command started is shut down
    (outcome,) = report["outcomes"]
    assert outcome["status"] == "finished", outcome
    summary = json.loads((Path(outcome["run"]) / runs.SUMMARY_FILE).read_text())
    assert summary["per_type"] == "uniform" and summary["seeds"] == [0, 1]
    assert report["table"]["rows"][0]["per_types"]["uniform"]["seeds"] == 2

    code, again, err = sweep(tiny_dataset_id, tmp_path, "uniform", "--backend", "ray")
    assert code == 0 and [o["status"] for o in again["outcomes"]] == ["skipped"], err  # no worker started for it


def test_tasks_option_selects_suite_tasks_by_name():
    mujoco = B.load_suite("mujoco")
    assert [t.task for t in B.select_tasks(mujoco, ["hopper"]).tasks] == ["Hopper"]
    assert B.select_tasks(mujoco, []) is mujoco
    with pytest.raises(ConfigError, match="--tasks Pong: not in the mujoco suite; choose from: Ant"):
        B.select_tasks(mujoco, ["Pong"])


def test_a_non_finite_seed_score_is_left_out_of_the_cell_and_named(tmp_path):
    target = B.Target("umaze", "fdivrl/antmaze/umaze-v1", "stand-in")
    cfg = B.group_config(target, "KL", "quick", "offline", (0, 1), steps=30)
    group = B.Group(target, "KL", cfg, tmp_path / "run", tmp_path / "run.log")
    with runs.RunDir.create(group.out, cfg.to_dict(), seeds={"seeds": [0, 1]}) as run:
        per_seed = [{"seed": 0, "d4rl_score": float("nan")}, {"seed": 1, "d4rl_score": 40.0}]
        summary = {"status": "finished", "per_type": "KL", "steps": 30, "seeds": [0, 1]}
        run.write_summary({**summary, "final_eval": {"per_seed": per_seed}})
    cell = B._cell([group], ("d4rl_score",), {})
    assert cell.estimates["d4rl_score"].value == 40.0 and cell.per_seed["d4rl_score"] == {1: 40.0}
    assert cell.note == "non-finite score of seed 0 left out"


def test_the_legend_says_what_the_published_columns_trained_on():
    """Online rows train fewer steps on newer envs than ROER's column; offline rows on stand-in data."""
    online = B.score_table(B.load_suite("mujoco"), "online", [], []).legend()
    offline = B.score_table(B.load_suite("antmaze"), "offline", [], []).legend()
    assert "published numbers are at 1M env steps on gym's v2 envs; rows here may train fewer (--steps)" in online
    assert not any("D4RL data" in line for line in online)
    assert "published numbers are on the original D4RL data; stand-in and local rows are not comparable" in offline


def test_a_cell_whose_values_left_the_return_range_is_marked_even_from_an_older_summary(tmp_path):
    # AntMaze's shifted rewards put every return in [-100, 0]: seed 1's mean Q of +35 is out of range,
    # not diverged. The summary was written before the check had `left_at`, so the metrics decide.
    target = B.Target("umaze", "fdivrl/antmaze/umaze-v1", "stand-in")
    cfg = B.group_config(target, "uniform", "quick", "offline", (0, 1), steps=30)
    group = B.Group(target, "uniform", cfg, tmp_path / "run", tmp_path / "run.log")
    with runs.RunDir.create(group.out, cfg.to_dict(), seeds={"seeds": [0, 1]}) as run:
        for step, q in ((10, (-20.0, -20.0)), (20, (-18.0, 35.0)), (30, (-17.0, -5.0))):
            for seed in (0, 1):
                run.log_metrics({"step": step, "seed": seed, "q_mean": q[seed]})
        old_check = {"status": "bounded", "per_seed": [{"seed": s, "diverged_at": None} for s in (0, 1)]}
        per_seed = [{"seed": 0, "d4rl_score": 20.0}, {"seed": 1, "d4rl_score": 40.0}]
        summary = {"status": "finished", "per_type": "uniform", "steps": 30, "seeds": [0, 1], "values": old_check}
        run.write_summary({**summary, "final_eval": {"per_seed": per_seed}})
    cell = B._cell([group], ("d4rl_score",), {})
    assert cell.values == "out of range in 1/2 seeds"
    assert B.format_cell(cell, "d4rl_score").endswith("(n=2) Q-OUT")


def test_stop_diverged_reaches_every_group_and_a_stopped_run_s_cell_says_where_it_stopped(tmp_path, monkeypatch):
    target = B.Target("umaze", "fdivrl/antmaze/umaze-v1", "stand-in")
    groups = B.plan([target], ["KL", "JS"], [0, 1], "quick", "offline", tmp_path, stop_diverged=True, steps=30)
    assert [g.stop_diverged for g in groups] == [True, True]
    assert not any(g.stop_diverged for g in B.plan([target], ["KL"], [0], "quick", "offline", tmp_path, steps=30))
    js, kl = sorted(groups, key=lambda g: g.per_type)
    per_seed = [{"seed": 0, "d4rl_score": 0.0}, {"seed": 1, "d4rl_score": 10.0}]
    for group, early in ((js, {"stopped_early": {"step": 10}}), (kl, {})):  # KL: a shorter run, not stopped
        with runs.RunDir.create(group.out, group.config.to_dict(), seeds={"seeds": [0, 1]}) as run:
            summary = {"status": "finished", "per_type": group.per_type, "steps": 10, "seeds": [0, 1]}
            run.write_summary({**summary, "final_eval": {"per_seed": per_seed}, **early})
    cell = B._cell([js], ("d4rl_score",), {})
    assert cell.estimates["d4rl_score"].value == 5.0 and cell.note == "run stopped at step 10 of 30 (diverged)"
    assert B._cell([kl], ("d4rl_score",), {}).note == ""
    # a stopped run is done for a sweep that stops diverged runs, and trained on by one that does not
    assert B.is_done(js) and not B.is_done(dataclasses.replace(js, stop_diverged=False))
    early = "resume (stopped early: finished only under --stop-diverged)"
    assert (B.planned_state(js), B.planned_state(dataclasses.replace(js, stop_diverged=False))) == ("finished", early)
    # without the data, the finished runs stand for it only if the sweep counts the stop as finished, and
    # the line that leaves the dataset out says which run is not
    monkeypatch.setattr(B.minari_data, "local_datasets", lambda: [])
    sweep = dict(seeds=[0, 1], results_dir=tmp_path, datasets=["fdivrl/antmaze/umaze-v1"], steps=30)
    assert [g.out for g in B.prepare("antmaze", ["KL", "JS"], stop_diverged=True, **sweep)[2]] == [kl.out, js.out]
    with pytest.raises(DatasetError) as left_out:
        B.prepare("antmaze", ["KL", "JS"], **sweep)
    assert str(left_out.value) == (
        "no dataset of the sweep is present locally: fdivrl/antmaze/umaze-v1 is not present locally: build it "
        "with `fdivrl data antmaze umaze` (1 of the sweep's 2 runs on it are finished, these need it: "
        f"{js.out.name}: {early})"
    )
