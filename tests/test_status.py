"""`fdivrl status`: where runs stand, finished or not (fdivrl/analysis/progress.py, fdivrl/cli/status.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from fdivrl.analysis import progress
from fdivrl.cli.app import main
from fdivrl.runs import checkpoint
from fdivrl.runs import rundir as runs

TASK = "fdivrl/antmaze/medium-play-v1"


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, out.getvalue(), err.getvalue()


def start_run(
    path: Path, per_type: str, ess: float, steps: int = 300, evals=((50, {0: 0.0, 1: 10.0}),), q: float = -20.0
) -> runs.RunDir:
    """A run that has trained to step 100 with checkpoints at 50 (60 s) and 100 (85 s): 2 steps/s;
    its mean Q is -20 at step 50 and `q` at 100 (AntMaze after the shift: returns in [-100, 0])."""
    config = {"per_type": per_type, "mode": "offline", "dataset": TASK, "preset": "quick", "seeds": [0, 1]}
    config |= {"data": {"reward_shift": -1.0}}
    config |= {"steps": steps, "replay": {"prioritized": per_type != "uniform"}}
    run = runs.RunDir.create(path, config, seeds={"seeds": [0, 1]})
    for step in (50, 100):
        for seed in (0, 1):
            row = {"step": step, "seed": seed, "priority_ess_frac": ess, "priority_floor_frac": 0.1 * (seed + 1)}
            row |= {"q_mean": -20.0 if step == 50 else q}
            run.log_metrics(row | {"priority_cap_frac": 0.0, "loss_weight_cv": 0.5})
    for step, scores in evals:
        for seed, score in scores.items():
            run.log_eval({"step": step, "seed": seed, "d4rl_score": score, "success_rate": score / 100})
    for step, wall in ((50, 60.0), (100, 85.0)):
        checkpoint.save_checkpoint(run.checkpoint_dir, step, {"w": np.zeros(2)}, meta={runs.WALL_KEY: wall})
    return run


def test_every_state_a_run_can_be_in(tmp_path):
    root = tmp_path / "results"
    running = start_run(root / "running", "KL", ess=0.3)  # still open: its lock is held by this (live) process
    start_run(root / "stopped", "JS-exact", ess=0.99, q=500.0).close()
    start_run(root / "killed", "KL", ess=0.3).close()
    lock = json.loads((root / "running" / runs.LOCK_FILE).read_text())
    # a killed writer leaves its stamp, and its pid may belong to a live process since (here: this one)
    (root / "killed" / runs.LOCK_FILE).write_text(json.dumps(lock))
    early = runs.RunDir.create(root / "early", {"per_type": "KL", "dataset": TASK, "steps": 10}, seeds={"seeds": [0]})
    early.log_metrics({"step": 5, "seed": 0, "priority_ess_frac": 0.5})
    early.close()  # killed before its first checkpoint
    finished = start_run(root / "finished", "uniform", ess=1.0, steps=100, evals=((100, {0: 70.0, 1: 80.0}),))
    finished.write_summary({"status": "finished"})
    finished.close()
    runs.RunDir.create(root / "new", {"per_type": "PER", "dataset": TASK, "steps": 10}, seeds={"seeds": [0]}).close()
    (root / "broken").mkdir()
    (root / "broken" / runs.METRICS_FILE).write_text("{}\n")  # a run that lost its config.json
    try:
        found = {p.path.name: p for p in progress.scan([root])}
    finally:
        running.close()

    assert {name: p.state for name, p in found.items()} == {
        "broken": "corrupt",
        "early": "stopped",
        "finished": "finished",
        "killed": "stopped",
        "new": "new",
        "running": "running",
        "stopped": "stopped",
    }
    run = found["running"]
    assert (run.step, run.steps, run.checkpoint) == (100, 300, 100)
    assert run.rate == pytest.approx(50 / 25) and run.eta_s == pytest.approx(200 / 2)
    assert run.holder.startswith(f"pid {lock['pid']} on ")
    assert (run.metric, run.eval_step, run.evals) == ("d4rl_score", 50, {0: 0.0, 1: 10.0})
    assert run.activity["status"] == "active"
    assert [r["floor_frac"] for r in run.activity["per_seed"]] == pytest.approx([0.1, 0.2])
    assert found["stopped"].activity["status"] == "inactive" and found["stopped"].eta_s is None
    assert run.values["status"] == "bounded" and found["stopped"].values["status"] == "diverged"
    assert [s["diverged_at"] for s in found["stopped"].values["per_seed"]] == [100, 100]
    assert found["killed"].holder == "" and found["early"].checkpoint is None
    assert found["finished"].evals == {0: 70.0, 1: 80.0} and found["finished"].activity["status"] == "uniform"
    assert "config" in found["broken"].note


def test_cli_prints_a_table_and_json_lines(tmp_path, monkeypatch):
    from fdivrl.cli.common import console

    monkeypatch.setattr(console, "width", 300)  # one line per row
    start_run(tmp_path / "r" / "KL-run", "KL", ess=0.3).close()
    start_run(tmp_path / "r" / "JS-run", "JS", ess=0.3, q=4057.0).close()
    code, out, err = cli(["status", str(tmp_path / "r")])
    assert code == 0, err
    assert "DIVERGED from @100" in out and out.count("│ ok ") == 1
    assert "KL-run" in out and "stopped @100" in out and "100/300" in out and "0 10 @50" in out
    assert "active: ESS 0.30, floor 10–20%, cap 0%" in " ".join(out.split())
    code, out, err = cli(["status", str(tmp_path / "r"), "--json"])
    assert code == 0, err
    js, kl = [json.loads(line) for line in out.splitlines()]  # in path order
    assert kl["state"] == "stopped" and kl["per_type"] == "KL" and kl["evals"] == {"0": 0.0, "1": 10.0}
    assert js["values"]["status"] == "diverged" and kl["values"]["status"] == "bounded"


@pytest.mark.parametrize(
    ("make", "needle"),
    [(lambda p: None, "no such directory"), (lambda p: p.mkdir(), "no run directories under")],
)
def test_nothing_to_report_is_one_line(tmp_path, make, needle):
    make(tmp_path / "empty")
    code, _, err = cli(["status", str(tmp_path / "empty")])
    assert code != 0 and len(err.strip().splitlines()) == 1 and needle in err


def test_the_q_column_names_the_first_step_out_of_range_and_a_divergence_first():
    from fdivrl.analysis import values
    from fdivrl.cli.status import _values

    q_by_seed = {0: [-20, 35], 1: [-20, -5]}
    rows = [{"step": 1000 * (i + 1), "seed": s, "q_mean": q} for s, qs in q_by_seed.items() for i, q in enumerate(qs)]
    assert _values(values.check(rows, (-100.0, 0.0))) == "out of range in 1/2 seeds from @2k"
    rows += [{"step": 3000, "seed": 1, "q_mean": 500.0}]
    assert _values(values.check(rows, (-100.0, 0.0))) == "DIVERGED IN 1/2 SEEDS from @3k"
    assert _values(values.check(rows[:1], (-100.0, 0.0))) == "ok"
    clipped = [{**r, "target_clip_frac": 0.25} for r in rows[:1]]  # --clip-targets: the clip, not the learner
    assert _values(values.check(clipped, (-100.0, 0.0))) == "ok (targets clipped, 25.0% cut)"
