"""The results page cannot drift from the tables it is made of, and its script's sweep is valid."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

from fdivrl.analysis import bench as B
from fdivrl.analysis import stats
from fdivrl.core import divergences as D

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "results.md"
SCRIPT = ROOT / "benchmarks" / "results.sh"


def _page_module():
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "benchmarks" / "results_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script_value(name: str) -> str:
    match = re.search(rf"^{name}=\(?([^)\n]*)\)?$", SCRIPT.read_text(), re.M)
    assert match, name
    return match.group(1)


def test_regeneration_script_is_valid_bash_and_names_real_tasks_and_per_types():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    antmaze = {t.task for t in B.load_suite("antmaze").tasks}
    assert set(_script_value("DEFAULT_TASKS").split()) | set(_script_value("LONG_TASKS").split()) <= antmaze
    assert int(_script_value("LONG_STEPS").removeprefix("${LONG_STEPS:-").removesuffix("}")) > 100_000
    for key in ("OFFLINE_TYPES", "ONLINE_TYPES"):
        names = _script_value(key).split(",")
        assert [D.get(n).name for n in names] == names
    assert {"uniform", "PER", "KL", "JS", "JS-exact", "sigmoid"} <= set(_script_value("OFFLINE_TYPES").split(","))
    assert "Hopper" in {t.task for t in B.load_suite("mujoco").tasks}


def test_every_option_the_script_passes_exists_on_its_command():
    """A renamed or removed option would fail only hours into a regeneration: check them all here."""
    import typer

    from fdivrl.cli.app import app

    commands = typer.main.get_command(app).commands
    # one logical line per call: join the continuation lines first; a call ends at a pipe or && too
    text = SCRIPT.read_text().replace("\\\n", " ")
    calls = [
        (name, re.split(r" (?:\|\|?|&&) ", args)[0]) for name, args in re.findall(r"\$FDIVRL (\w+)( [^\n]*)", text)
    ]
    # a function whose body is one call passes its callers' options on to that command
    wrappers = dict(re.findall(r"^(\w+)\(\) \{[^\n]*\n\s*\$FDIVRL (\w+)", text, re.M))
    assert wrappers, "the script's bench wrappers"
    for wrapper, name in wrappers.items():
        calls += [(name, args) for args in re.findall(rf"(?<![\w$-]){wrapper} ([^\n]*)", text)]
    assert any("--dry-run" in args for _, args in calls)
    assert {name for name, _ in calls} >= {"bench", "compare", "status", "data"}
    for name, args in calls:
        command = commands[name]
        if hasattr(command, "commands"):  # a group (data): the subcommand is the next word
            command = command.commands[args.split()[0]]
        known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        used = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", args))
        assert used <= known, (name, sorted(used - known))


def test_render_copies_the_tables_it_is_made_of(tmp_path):
    out = tmp_path / "results"
    (out / "compare-antmaze").mkdir(parents=True)
    table = "# antmaze (offline)\n\n| task | KL D4RL |\n|---|---|\n| umaze | 80.0 |\n"
    (out / "bench-antmaze-offline.md").write_text(table)
    (out / "compare-antmaze" / "stats.md").write_text("# KL vs JS\n\n## Statistics\n\n| a |\n|---|\n| 1 |\n")
    (out / "notes.md").write_text("Hand-written notes.\n")
    provenance = {"commits": ["abc"], "run_seconds": 7200, "runs_untimed": 1, "runs": 3}
    provenance["machines"] = ["NVIDIA H200 GPU", "x86_64 CPU, 2 cores"]
    provenance["settings"] = {"antmaze": ["fdivrl/antmaze/umaze-v1: 100,000 gradient steps"]}
    page = _page_module().render(out, tmp_path / "results.md", provenance)
    runs = "Runs (from their config.json):\n\n- fdivrl/antmaze/umaze-v1: 100,000"
    assert f"## Offline AntMaze on the local stand-ins\n\n{runs}" in page
    assert "| umaze | 80.0 |" in page and "#### Statistics" in page and "Hand-written notes." in page
    assert (
        "`abc` on NVIDIA H200 GPU and x86_64 CPU, 2 cores;" in page
        and "2.0 h" in page
        and "Online Hopper-v5\n\nNot run yet" in page
    )
    assert "1 of the 3 run directories were made before fdivrl recorded wall time" in page


def test_provenance_sums_the_wall_time_of_the_runs_compare_used(tmp_path):
    runs = []
    platforms = {
        "a": {"machine": "x86_64", "cpu_count": 2, "cpus_usable": 1, "cpu_model": "AMD EPYC", "jax_backend": "cpu"},
        "b": {"machine": "x86_64", "cpu_count": 16, "jax_backend": "gpu", "jax_devices": ["NVIDIA H200"]},
    }
    for name, wall in (("a", 100.0), ("b", 20.5), ("c", None)):
        run = tmp_path / name
        run.mkdir()
        config = {"versions": {"fdivrl_source": f"commit-{name}"}, "platform": platforms.get(name, {})}
        (run / "config.json").write_text(json.dumps(config))
        (run / "summary.json").write_text(json.dumps({"wall_s": wall}))
        runs.append({"path": str(run)})
    found = _page_module().run_provenance({"used": runs})
    assert found == {
        "commits": {"commit-a", "commit-b", "commit-c"},
        "machines": {"AMD EPYC, 2 cores", "NVIDIA H200 GPU", "unrecorded machine"},
        "run_seconds": 120.5,
        "runs_untimed": 1,
        "runs": 3,
    }


def test_settings_state_each_tasks_steps_as_its_runs_trained(tmp_path):
    """The page reads the steps from the runs, so medium-play at another LONG_STEPS cannot be mislabelled."""
    runs = []
    for name, mode, steps, task, layer_norm in (
        ("a", "offline", 300_000, {"dataset": "fdivrl/antmaze/medium-play-v1"}, ["critic", "value"]),
        ("b", "offline", 300_000, {"dataset": "fdivrl/antmaze/medium-play-v1"}, ["critic", "value"]),
        ("c", "online", 100_000, {"env": "Hopper-v5"}, []),
        ("e", "online", 100_000, {"env": "Hopper-v5"}, []),
        ("d", "offline", 100_000, {"dataset": "fdivrl/antmaze/umaze-v1"}, ["actor", "critic", "value"]),
    ):
        run = tmp_path / name
        run.mkdir()
        seeds = [3, 4, 5] if name == "e" else [0, 1, 2]
        config = {"mode": mode, "steps": steps, "seeds": seeds, "eval_every": 50_000, "eval_episodes": 10}
        per_type = "Pc" if name == "e" else f"P{name}"  # Hopper's seeds 0-5 are one per_type's
        config.update(task, final_eval_episodes=50, learner={"layer_norm": layer_norm}, per_type=per_type)
        platform = {"machine": "x86_64", "cpu_count": 2, "cpus_usable": 1, "jax_backend": "cpu"}
        if name == "b":  # medium-play's groups, on the same seeds, ran on two machines: the line says which ran where
            platform = dict(platform, cpu_model="AMD EPYC")
        if name == "e":  # seeds 3-5 of Hopper on a GPU: the line says which seeds ran where
            platform = {"machine": "x86_64", "cpu_count": 16, "jax_backend": "gpu", "jax_devices": ["NVIDIA H200"]}
        (run / "config.json").write_text(json.dumps({"config": config, "platform": platform}))
        runs.append({"path": str(run)})
    assert _page_module().run_settings({"used": runs}) == [
        "Hopper-v5: 100,000 env steps, 6 seeds (0–2 on x86_64 CPU (model not recorded), 2 cores; 3–5 on NVIDIA"
        " H200 GPU), evaluation every 50,000 steps on 10 episodes, no LayerNorm",
        "fdivrl/antmaze/medium-play-v1: 300,000 gradient steps, 3 seeds (Pb on AMD EPYC, 2 cores; Pa on x86_64"
        " CPU (model not recorded), 2 cores), evaluation every 50,000 steps on 10 episodes, final evaluation on"
        " 50, LayerNorm in the critic and value networks",
        "fdivrl/antmaze/umaze-v1: 100,000 gradient steps, 3 seeds, evaluation every 50,000 steps on 10 episodes,"
        " final evaluation on 50, LayerNorm in the actor, critic and value networks",
    ]


@pytest.mark.skipif(not PAGE.exists(), reason="the results page has not been made yet")
def test_committed_page_is_what_the_committed_tables_give():
    provenance = json.loads((OUT / "provenance.json").read_text())
    assert PAGE.read_text() == _page_module().render(Path("benchmarks/results"), PAGE, provenance)


@pytest.mark.parametrize("stem", ["bench-antmaze-offline", "bench-antmaze-long-offline", "bench-mujoco-online"])
def test_committed_bench_json_and_markdown_agree(stem):
    """Every cell of the Markdown table is the JSON's estimate, and the estimate is the JSON's per-seed
    scores' mean and t-interval: the page's numbers trace back to each seed's summary.json."""
    if not (OUT / f"{stem}.json").exists():
        pytest.skip(f"{stem} has not been made yet")
    table = json.loads((OUT / f"{stem}.json").read_text())
    table_lines = [line for line in (OUT / f"{stem}.md").read_text().splitlines() if line.startswith("|")]
    md_rows = {line.split("|")[1].strip(): line for line in table_lines[2:]}  # after the header and |---|
    assert len(md_rows) == len(table["rows"])
    for row in table["rows"]:
        line = md_rows[row["task"]]
        for per_type, cell in row["per_types"].items():
            if table["mode"] == "offline":  # each seed's final evaluation, read from its runs' summary.json
                final = {
                    str(e["seed"]): e
                    for run in cell.get("runs") or [cell["run"]]  # tables before --seeds-per-run name one run
                    for e in json.loads((ROOT / run / "summary.json").read_text())["final_eval"]["per_seed"]
                }
            for metric in table["metrics"]:
                if metric not in cell:
                    continue
                est = stats.Estimate(**{k: float("nan") if v is None else v for k, v in cell[metric].items()})
                verdicts = {"priorities": cell["priorities"], "values": cell.get("values", "–")}
                text = B.format_cell(B.Cell({metric: est}, cell["seeds"], **verdicts), metric)
                assert text in line, (row["task"], per_type, metric)
                if table["mode"] == "offline":
                    by_seed = {seed: e[metric] for seed, e in final.items()}
                    assert cell["per_seed"][metric] == by_seed, (row["task"], per_type, metric)
                values = list(cell["per_seed"][metric].values())
                again = stats.t_interval(values)
                assert again.value == pytest.approx(est.value) and len(values) == cell["seeds"]
