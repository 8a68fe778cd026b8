"""`fdivrl compare` on run directories written with the same RunDir API that `fdivrl train` uses.

Scores are chosen so every statistic can be checked by hand; broken directories of every kind sit
beside the good ones and must be reported, never crash the comparison.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from fdivrl.analysis import compare as K
from fdivrl.analysis.results import Run, scan
from fdivrl.analysis.stats import Estimate
from fdivrl.cli.app import main
from fdivrl.errors import ConfigError
from fdivrl.runs import rundir as runs
from fdivrl.runs.io import read_jsonl

TASK_A, TASK_B, TASK_C = "fdivrl/antmaze/umaze-v1", "fdivrl/antmaze/medium-play-v1", "D4RL/antmaze/large-play-v1"


def write_run(
    path: Path,
    per_type: str,
    task: str,
    finals: dict[int, float],
    mode: str = "offline",
    last: dict[int, float] | None = None,
    n_last: int = 10,
    **summary,
) -> Path:
    """A finished run: two evaluations and two priority records per seed, final scores `finals`; with `last`,
    summary.json also carries score.per_seed (seed -> mean of its last `n_last` evaluations), as online runs do."""
    seeds = sorted(finals)
    config = {"per_type": per_type, "mode": mode, "dataset": task, "preset": "quick", "seeds": seeds}
    with runs.RunDir.create(path, config, seeds={"seeds": seeds}) as run:
        for step in (10, 20):
            for s in seeds:
                w = 1.0 + step / 10 + s
                run.log_metrics(
                    {"step": step, "seed": s, "priority_weight_mean": w, "priority_weight_min": 0.5}
                    | {"priority_weight_max": 4 * w, "priority_ess_frac": 0.9}
                )
                score = finals[s] if step == 20 else finals[s] / 2
                run.log_eval({"step": step, "seed": s, "d4rl_score": score, "mean_return": score / 100})
        per_seed = [{"step": 20, "seed": s, "d4rl_score": v, "mean_return": v / 100} for s, v in finals.items()]
        record = {"status": "finished", "per_type": per_type, "mode": mode, "dataset": task, "steps": 20}
        if last is not None:
            record["score"] = {
                "n_evaluations": float(n_last),
                "mean_return": sum(last.values()) / len(last) / 100,
                "d4rl_score": sum(last.values()) / len(last),
                "per_seed": [{"seed": s, "d4rl_score": v, "mean_return": v / 100} for s, v in last.items()],
            }
        run.write_summary({**record, "seeds": seeds, "final_eval": {"per_seed": per_seed}, **summary})
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    # task A: KL {100, 0} vs JS {0, 0}; task B: KL {20, 40} vs JS {30, 30}; task C: KL only
    write_run(root / "a" / "KL", "KL", TASK_A, {0: 100.0, 1: 0.0})
    write_run(root / "a" / "JS", "JS", TASK_A, {0: 0.0, 1: 0.0})
    write_run(root / "deeper" / "made" / "by-train", "KL", TASK_B, {0: 20.0, 1: 40.0})  # anywhere under --results
    write_run(root / "b" / "JS", "JS", TASK_B, {3: 30.0, 4: 30.0})
    write_run(root / "c" / "KL", "KL", TASK_C, {0: 10.0})
    return root


def break_some(root: Path) -> dict[str, str]:
    """Every kind of run directory compare must skip, and the reason it must give."""
    write_run(root / "x" / "uniform", "uniform", TASK_A, {0: 5.0})
    write_run(root / "x" / "dup", "KL", TASK_A, {1: 77.0, 2: 1.0})  # seed 1 of KL on A is taken
    write_run(root / "x" / "noeval", "JS", TASK_A, {7: 1.0}, final_eval=None)
    (root / "x" / "unfinished").mkdir(parents=True)
    (root / "x" / "unfinished" / runs.CONFIG_FILE).write_text(json.dumps({"config": {"per_type": "KL"}}))
    (root / "x" / "badconfig").mkdir()
    (root / "x" / "badconfig" / runs.CONFIG_FILE).write_text("{ torn")
    (root / "x" / "nopertype").mkdir()
    (root / "x" / "nopertype" / runs.CONFIG_FILE).write_text(json.dumps({"config": {"mode": "offline"}}))
    bad_log = write_run(root / "x" / "badlog", "JS", TASK_A, {9: 1.0})
    (bad_log / runs.EVAL_FILE).write_text('{"step": 10}\nnot json\n{"step": 20}\n')
    bad_summary = write_run(root / "x" / "badsummary", "JS", TASK_A, {8: 1.0})
    (bad_summary / runs.SUMMARY_FILE).write_text(json.dumps({"status": "finished", "final_eval": {"per_seed": [{}]}}))
    return {
        "uniform": "per_type uniform is not compared",
        "dup": "duplicate seeds of KL on fdivrl/antmaze/umaze-v1",
        "noeval": "no final d4rl_score in summary.json",
        "unfinished": "unfinished (no summary.json)",
        "badconfig": "corrupt: config.json is unreadable",
        "nopertype": "corrupt: config.json names no per_type",
        "badlog": "corrupt: ",
        "badsummary": "corrupt: summary.json is malformed",
    }


def test_statistics_per_task_and_aggregate(results):
    c = K.compare(results, ("KL", "JS"), reps=500)
    assert c.aggregate_tasks == (TASK_B, TASK_A)  # sorted; C has no JS run
    assert c.notes == (f"{TASK_C}: left out of the aggregate (no runs of JS)",)
    assert c.scores[TASK_A]["KL"].tolist() == [100.0, 0.0]
    agg = c.per_task[K.AGGREGATE]
    assert agg["KL"]["mean"].value == pytest.approx((50 + 30) / 2)
    assert agg["JS"]["mean"].value == pytest.approx((0 + 30) / 2)
    assert agg["KL"]["iqm"].value == pytest.approx((20 + 40) / 2)  # pooled 0 20 40 100: middle two
    assert agg["JS"]["optimality_gap"].value == pytest.approx(100 - 60 / 4)
    assert c.per_task[TASK_C]["KL"]["median"].value == 10.0
    # P(KL > JS): task A (2 wins + 2 ties·½)/4 = 0.75, task B 2/4 = 0.5
    assert c.improvement["KL > JS"][TASK_A].value == pytest.approx(0.75)
    assert c.improvement["KL > JS"][TASK_B].value == pytest.approx(0.5)
    assert c.improvement["KL > JS"][K.AGGREGATE].value == pytest.approx(0.625)
    assert c.improvement["JS > KL"][K.AGGREGATE].value == pytest.approx(0.375)
    assert TASK_C not in c.improvement["KL > JS"]
    for task, by_type in c.per_task.items():
        for est in by_type.values():
            for e in est.values():
                if task == TASK_C:  # one seed: no interval rather than a zero-width one
                    assert not e.has_interval and e.n == 1
                else:
                    assert e.low <= e.value <= e.high


def test_broken_run_directories_are_reported_not_fatal(results):
    expected = break_some(results)
    c = K.compare(results, ("KL", "JS"), reps=200)
    reasons = {s.path.name: s.reason for s in c.skipped}
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reasons[name].startswith(reason), (name, reasons[name])
    assert len(c.used) == 5
    assert c.scores[TASK_A]["KL"].tolist() == [100.0, 0.0]  # the duplicate's seeds did not leak in


def test_files_and_plots(results, tmp_path):
    c = K.compare(results, ("KL", "JS"), reps=200)
    files = K.write_files(c, tmp_path / "out", reps=200)
    names = sorted(f.name for f in files)
    assert names == sorted(
        ["stats.md", "stats.csv", "stats.json"]
        + [f"{stem}.{ext}" for stem in ("learning_curves", "priority_weights") for ext in ("png", "svg")]
    )
    for f in files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["probability_of_improvement"]["KL > JS"][K.AGGREGATE]["value"] == pytest.approx(0.625)
    rows = list(csv.DictReader((tmp_path / "out" / "stats.csv").open()))
    assert {"mean", "median", "iqm", "optimality_gap", "probability_of_improvement"} <= {r["statistic"] for r in rows}
    md = (tmp_path / "out" / "stats.md").read_text()
    assert "## Probability of improvement" in md and "left out of the aggregate" in md

    curves = K.learning_curves(c, reps=200)
    steps, band = curves[TASK_A]["KL"]
    assert steps.tolist() == [10, 20] and band[0].tolist() == [25.0, 50.0]
    priorities = K.priority_curves(c)[TASK_A]["KL"]
    assert priorities["priority_weight_max"][1].tolist() == [4 * 3.0, 4 * 4.0]  # the largest over seeds
    assert priorities["priority_weight_mean"][1].tolist() == [2.5, 3.5]


def test_modes_are_separate_tasks(results):
    write_run(results / "f" / "KL", "KL", TASK_A, {0: 90.0}, mode="finetune")
    c = K.compare(results, ("KL", "JS"), reps=200)
    assert c.scores[f"{TASK_A} (finetune)"]["KL"].tolist() == [90.0]
    assert c.scores[TASK_A]["KL"].tolist() == [100.0, 0.0]


def with_online_runs(root: Path) -> Path:
    """Online KL and finetune JS runs on task A whose last-N means differ from their final evaluations."""
    write_run(root / "on" / "KL", "KL", TASK_A, {0: 90.0, 1: 10.0}, mode="online", last={0: 60.0, 1: 20.0})
    write_run(root / "ft" / "JS", "JS", TASK_A, {5: 50.0}, mode="finetune", last={5: 30.0}, n_last=4)
    return root


ONLINE_A, FINETUNE_A = f"{TASK_A} (online)", f"{TASK_A} (finetune)"


def test_auto_scores_online_and_finetune_runs_by_their_last_evaluations(results, tmp_path):
    c = K.compare(with_online_runs(results), ("KL", "JS"), reps=200)
    assert c.score == "auto"
    assert c.scores[ONLINE_A]["KL"].tolist() == [60.0, 20.0]
    assert c.scores[FINETUNE_A]["JS"].tolist() == [30.0]
    assert c.scores[TASK_A]["KL"].tolist() == [100.0, 0.0]  # offline: the final evaluation
    assert c.per_task[ONLINE_A]["KL"]["mean"].value == pytest.approx(40.0)

    report = c.to_json()
    assert report["score"] == "auto"
    used = {Path(u["path"]).relative_to(results).as_posix(): u for u in report["used"]}
    assert used["on/KL"]["score"] == "mean of the last 10 evaluations" and used["on/KL"]["seeds"] == [0, 1]
    assert used["ft/JS"]["score"] == "mean of the last 4 evaluations"
    assert used["a/KL"]["score"] == "final evaluation"
    assert report["score_description"] == (
        "final evaluation (offline); mean of the last 10 evaluations (online); "
        "mean of the last 4 evaluations (finetune)"
    )

    K.write_files(c, tmp_path / "out", reps=200)
    md = (tmp_path / "out" / "stats.md").read_text()
    title = md.splitlines()[0]
    assert title.startswith("# KL vs JS: d4rl_score, ") and "mean of the last 10 evaluations (online)" in title
    assert "--score auto" in md
    online_row = next(line for line in md.splitlines() if "on/KL" in line)
    assert "mean of the last 10 evaluations" in online_row
    assert "final evaluation" in next(line for line in md.splitlines() if "/a/KL" in line)


def test_final_and_last_protocols(results):
    with_online_runs(results)
    final = K.compare(results, ("KL", "JS"), reps=200, score="final")
    assert final.scores[ONLINE_A]["KL"].tolist() == [90.0, 10.0]
    assert final.scores[FINETUNE_A]["JS"].tolist() == [50.0]
    assert final.scores[TASK_A]["KL"].tolist() == [100.0, 0.0]
    assert {u["score"] for u in final.to_json()["used"]} == {"final evaluation"}
    assert final.to_json()["score"] == "final"

    last = K.compare(results, ("KL", "JS"), reps=200, score="last")
    assert last.scores == {ONLINE_A: {"KL": pytest.approx([60.0, 20.0])}, FINETUNE_A: {"JS": pytest.approx([30.0])}}
    reasons = {s.path.relative_to(results).as_posix(): s.reason for s in last.skipped}
    missing = "no per-seed mean of the last evaluations (d4rl_score) in summary.json"
    assert reasons == {p: missing for p in ("a/KL", "a/JS", "deeper/made/by-train", "b/JS", "c/KL")}
    assert last.to_json()["score_description"] == (
        "mean of the last 10 evaluations (online); mean of the last 4 evaluations (finetune)"
    )


def test_online_runs_without_last_evaluations(results):
    """An older online run (no score.per_seed) is scored by its final evaluation under auto, skipped under last."""
    write_run(results / "old" / "KL", "KL", TASK_A, {0: 70.0}, mode="online")
    write_run(results / "on" / "JS", "JS", TASK_A, {0: 80.0}, mode="online", last={0: 40.0})
    c = K.compare(results, ("KL", "JS"), reps=200)
    assert c.scores[ONLINE_A] == {"KL": pytest.approx([70.0]), "JS": pytest.approx([40.0])}
    assert c.run_score(next(r for r in c.used if r.path.name == "KL" and r.mode == "online")) == "final evaluation"
    assert any(n.startswith(f"{ONLINE_A}: runs scored by different rules") for n in c.notes)
    assert not any("different rules" in n and not n.startswith(ONLINE_A) for n in c.notes)

    used, skipped = K.select(scan(results), ("KL", "JS"), "d4rl_score", "last")
    assert [r.path.relative_to(results).as_posix() for r in used] == ["on/JS"]
    reasons = {s.path.relative_to(results).as_posix(): s.reason for s in skipped}
    assert reasons["old/KL"] == "no per-seed mean of the last evaluations (d4rl_score) in summary.json"
    with pytest.raises(ConfigError, match="no finished runs of KL under"):  # no KL run has them
        K.compare(results, ("KL", "JS"), reps=200, score="last")
    # under final the message names the final evaluation, as before
    write_run(results / "noeval" / "KL", "KL", TASK_A, {3: 1.0}, mode="online", final_eval=None)
    c = K.compare(results, ("KL", "JS"), reps=200, score="final")
    assert {s.path.relative_to(results).as_posix(): s.reason for s in c.skipped}["noeval/KL"] == (
        "no final d4rl_score in summary.json"
    )


@pytest.mark.parametrize(
    "score",
    [
        {"n_evaluations": 10.0, "per_seed": [{"seed": 0, "d4rl_score": "high"}]},
        {"n_evaluations": 10.0, "per_seed": [{"d4rl_score": 1.0}]},
        {"n_evaluations": 10.0, "per_seed": {"0": {"d4rl_score": 1.0}}},
        {"per_seed": [{"seed": 0, "d4rl_score": 1.0}]},
        {"n_evaluations": 0.0, "per_seed": [{"seed": 0, "d4rl_score": 1.0}]},
        [1, 2],
    ],
)
def test_malformed_last_evaluation_scores_make_the_run_corrupt(results, score):
    write_run(results / "bad" / "KL", "KL", TASK_A, {0: 5.0}, mode="online", score=score)
    c = K.compare(results, ("KL", "JS"), reps=200)
    reasons = {s.path.relative_to(results).as_posix(): s.reason for s in c.skipped}
    assert reasons["bad/KL"].startswith("corrupt: summary.json is malformed"), reasons


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, out.getvalue(), err.getvalue()


def test_cli(results, tmp_path):
    break_some(results)
    code, out, err = cli(["compare", "KL", "JS", "--results", str(results), "--reps", "200"])
    assert code == 0, err
    for needle in ("probability of improvement", "all tasks", "skipped", "unfinished", "IQM"):
        assert needle in out, needle
    assert (results / "compare" / "KL_vs_JS" / "learning_curves.png").exists()

    code, out, err = cli(["compare", "kl,js", "--results", str(results), "--out", str(tmp_path / "o"), "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert report["per_types"] == ["KL", "JS"] and len(report["skipped"]) == 8
    assert str(tmp_path / "o" / "priority_weights.svg") in report["files"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compare", "KL", "JS", "--results", "/nonexistent/dir"], "is not a directory"),
        (["compare", "KL", "chi2"], "no finished runs of chi2 under"),
        (["compare", "KL", "JS", "--metric", "speed"], "--metric 'speed' is not valid"),
        (["compare", "KL", "JS", "--score", "best"], "--score 'best' is not valid; choose one of: auto, final, last"),
        (["compare", "KL", "JS", "--reps", "5"], "--reps must be >= 100"),
    ],
)
def test_user_errors_are_one_line(argv, needle, results):
    if "--results" not in argv:
        argv = [*argv, "--results", str(results)]
    code, _, err = cli(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_cli_score_option(results, tmp_path):
    with_online_runs(results)
    base = ["compare", "KL", "JS", "--results", str(results), "--out", str(tmp_path / "o"), "--reps", "200"]
    code, out, err = cli([*base, "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert report["score"] == "auto" and report["scores"][ONLINE_A]["KL"] == [60.0, 20.0]

    code, out, err = cli([*base, "--score", "final", "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert report["score"] == "final" and report["scores"][ONLINE_A]["KL"] == [90.0, 10.0]

    code, out, err = cli([*base, "--score", "last", "--json"])
    assert code == 0, err
    assert json.loads(out)["scores"] == {ONLINE_A: {"KL": [60.0, 20.0]}, FINETUNE_A: {"JS": [30.0]}}

    code, out, err = cli([*base, "--score", "final"])
    assert code == 0, err
    assert "d4rl_score (final evaluation): 95%" in out and "final d4rl_score" not in out


def test_auto_metric_is_the_suites_score_of_the_task(results, tmp_path):
    """On Hopper every evaluation logs a success rate of 0: comparing it would rank nothing. auto takes the
    score the task's suite ranks by (return on MuJoCo, success on AntMaze); an env outside the suites is
    ranked like the suite that trains its mode: return online, success offline (as `fdivrl bench` does)."""
    root = tmp_path / "hopper"
    for name, finals in (("KL", {0: 300.0, 1: 500.0}), ("uniform", {0: 100.0, 1: 200.0})):
        run = write_run(root / name, name, "Hopper-v5", finals, mode="online", last=finals)
        summary = json.loads((run / runs.SUMMARY_FILE).read_text())
        for key in ("final_eval", "score"):  # what Hopper runs store: success 0 beside a return
            for p in summary[key]["per_seed"]:
                p["d4rl_score"] = 0.0
        (run / runs.SUMMARY_FILE).write_text(json.dumps(summary))
    c = K.compare(root, ("KL", "uniform"), reps=200)
    assert c.metric == "mean_return"
    assert {p: v.tolist() for p, v in c.scores["Hopper-v5 (online)"].items()} == {"KL": [3, 5], "uniform": [1, 2]}
    assert K.compare(root, ("KL", "uniform"), metric="d4rl_score", reps=200).scores["Hopper-v5 (online)"][
        "KL"
    ].tolist() == [0.0, 0.0]  # asked for explicitly, the meaningless score is still there to see

    other = tmp_path / "other"
    write_run(other / "KL", "KL", "MyEnv-v0", {0: 300.0}, mode="online", last={0: 300.0})
    write_run(other / "JS", "JS", "MyEnv-v0", {0: 100.0}, mode="online", last={0: 100.0})
    assert K.compare(other, ("KL", "JS"), reps=200).metric == "mean_return"
    offline = tmp_path / "offline"
    write_run(offline / "KL", "KL", "me/my-maze-v0", {0: 30.0})
    write_run(offline / "JS", "JS", "me/my-maze-v0", {0: 10.0})
    assert K.compare(offline, ("KL", "JS"), reps=200).metric == "d4rl_score"

    assert K.compare(results, ("KL", "JS"), reps=200).metric == "d4rl_score"  # AntMaze: success


def test_auto_metric_refuses_runs_ranked_on_different_scales(results):
    write_run(results / "hopper" / "KL", "KL", "Hopper-v5", {0: 300.0}, mode="online", last={0: 300.0})
    with pytest.raises(
        ConfigError, match=r"ranked by different scores \(d4rl_score: .*umaze.*; mean_return: Hopper-v5\)"
    ):
        K.compare(results, ("KL", "JS"), reps=200)
    c = K.compare(results, ("KL", "JS"), metric="mean_return", reps=200)
    assert c.scores["Hopper-v5 (online)"]["KL"].tolist() == [3.0]
    code, _, err = cli(["compare", "KL", "JS", "--results", str(results)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "pass --metric" in err, err


def test_priority_activity_marks_a_per_type_whose_weights_stayed_uniform(tmp_path):
    root = tmp_path / "results"
    write_run(root / "kl", "KL", TASK_A, {0: 50.0, 1: 70.0})  # its metrics log an ESS fraction of 0.9
    pinned = write_run(root / "js", "JS", TASK_A, {0: 80.0, 1: 90.0})
    rows = read_jsonl(pinned / runs.METRICS_FILE)
    (pinned / runs.METRICS_FILE).write_text(
        "".join(json.dumps({**r, "priority_ess_frac": 0.999, "priority_floor_frac": 1.0}) + "\n" for r in rows)
    )
    c = K.compare(root, ("KL", "JS"), reps=200)
    by_pair = {(r[0], r[1]): r for r in K.statistics_rows(c)[1]}
    assert by_pair[(TASK_A, "JS")][3] == "inactive" and by_pair[(TASK_A, "KL")][3] == "active"
    assert by_pair[(K.AGGREGATE, "JS")][3] == "inactive"
    activity_rows = {r[1]: r for r in K.activity_rows(c)[1]}
    assert activity_rows["JS"][2:5] == ["inactive", "0.999", "100%"]
    assert activity_rows["KL"][2:4] == ["active", "0.9"]
    pairs = [r[0] for r in K.improvement_rows(c)[1]]
    assert pairs == ["KL > JS (inactive)", "JS (inactive) > KL"]
    files = K.write_files(c, tmp_path / "out", reps=200)
    md = next(f for f in files if f.name == "stats.md").read_text()
    assert "inactive" in md and "ESS fraction" in md
    stats = json.loads(next(f for f in files if f.name == "stats.json").read_text())
    assert stats["activity"][TASK_A] == {"KL": "active", "JS": "inactive"}


def test_figures_mark_a_per_type_inactive_only_on_the_task_where_it_was(tmp_path, monkeypatch):
    root = tmp_path / "results"
    for task, name in ((TASK_A, "a"), (TASK_B, "b")):
        write_run(root / f"kl-{name}", "KL", task, {0: 50.0, 1: 70.0})
        write_run(root / f"js-{name}", "JS", task, {0: 80.0, 1: 90.0})
    pinned = root / "js-a" / runs.METRICS_FILE
    pinned.write_text("".join(json.dumps({**r, "priority_ess_frac": 0.999}) + "\n" for r in read_jsonl(pinned)))
    legends = []

    def keep_legends(fig, stem):
        for ax in fig.axes:
            legends.append(
                (stem.name, ax.get_title(), {(ln.get_label(), ln.get_linestyle(), ln.get_color()) for ln in ax.lines})
            )
        return []

    monkeypatch.setattr(K.plots, "_save", keep_legends)
    c = K.compare(root, ("KL", "JS"), reps=200)
    assert K.inactive_per_types(c) == {TASK_A: {"JS"}, TASK_B: set()}
    K.write_files(c, tmp_path / "out", reps=200)
    panels = {(stem, title.split(":")[0]): lines for stem, title, lines in legends}
    assert len(panels) == 4  # learning curves, and priority weights (ESS panel titles repeat the task)
    for stem in ("learning_curves", "priority_weights"):
        on_a, on_b = panels[(stem, TASK_A)], panels[(stem, TASK_B)]
        js_a = {(label, ls) for label, ls, _ in on_a if label.startswith("JS")}
        js_b = {(label, ls) for label, ls, _ in on_b if label.startswith("JS")}
        assert js_a == {("JS (inactive)", "--")} and js_b == {("JS", "-")}
        assert {ls for label, ls, _ in on_a | on_b if label.startswith("KL")} == {"-"}
        assert {color for label, _, color in on_a if label.startswith("JS")} == {
            color for label, _, color in on_b if label.startswith("JS")
        }


def test_improvement_cells_name_the_sides_whose_values_left_their_range():
    """P(X > Y) between learners whose mean Q went out of range compares values no return can have: the
    cell says which side, as it does for a divergence (which outranks it)."""

    def run(per_type: str, left: int | None, diverged: int | None = None) -> Run:
        return Run(
            path=Path(per_type), per_type=per_type, mode="offline", task="t", preset="quick", steps=10,
            seeds=(0,), is_standin=True, final={0: {"d4rl_score": 1.0}},
            diverged_at={0: diverged}, left_at={0: left},
        )  # fmt: skip

    half = Estimate(0.5, 0.25, 0.75)
    used = (run("KL", 20), run("uniform", None), run("JS", 5, 8))
    c = K.Comparison(
        ("KL", "uniform", "JS"), "d4rl_score", "auto", {}, {},
        {"KL > uniform": {"t": half}, "uniform > JS": {"t": half}, "JS > KL": {"t": half}},
        ("t",), (), used, (),
    )  # fmt: skip
    assert K.values_status(c, "t", "KL") == "out of range" and K.values_status(c, "t", "JS") == "diverged"
    rows = {row[0]: row[1] for row in K.improvement_rows(c)[1]}
    assert rows["KL > uniform"].endswith("(KL out of range)")
    assert rows["uniform > JS"].endswith("(JS diverged)")
    assert rows["JS > KL"].endswith("(JS diverged; KL out of range)")
