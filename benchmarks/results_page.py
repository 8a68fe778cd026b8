"""Writes docs/results.md from the tables `fdivrl bench` and `fdivrl compare` wrote to benchmarks/results/.

    python benchmarks/results_page.py [--out benchmarks/results] [--page docs/results.md]

Every number on the page comes from those files (the bench tables are copied verbatim, the
statistics are compare's own stats.md); only benchmarks/results/notes.md is written by hand. The
page names the commits the runs were made from (read from each run's config.json) and the runs'
wall time (each summary.json's `wall_s`), both kept in benchmarks/results/provenance.json. `render`
is pure, so a test can check that the committed page is exactly what the committed tables give.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SECTIONS = (
    ("antmaze", "Offline AntMaze on the local stand-ins", "bench-antmaze-offline", "compare-antmaze"),
    (
        "antmaze-long",
        "Offline AntMaze medium-play, trained longer",
        "bench-antmaze-long-offline",
        "compare-antmaze-long",
    ),
    ("hopper", "Online Hopper-v5", "bench-mujoco-online", "compare-hopper"),
)
PROTOCOL = """\
- **Data.** Offline rows train on fdivrl's local stand-ins `fdivrl/antmaze/<task>-v1`, made by
  `fdivrl data antmaze <task>` with fdivrl's own walker the way minari made D4RL's v1 data (1M
  steps, σ = 0.2 action noise, same mazes and limits). They are **not the D4RL datasets**: the
  published columns (marked `*`) are on the original data and are printed for orientation only.
- **Offline.** `--preset quick`: 100k gradient steps (batch 256), evaluation every 25k steps on 10
  episodes and a final evaluation on 50 episodes in the dataset's eval env (fixed start and goal);
  a seed's score is its final D4RL-style score = 100 × success rate. medium-play trains longer
  (`LONG_STEPS` in the script; the notes below say why, and why its runs are stopped). Each section
  states the steps and evaluations its runs used, read from their config.json. Published offline
  numbers are at 1M steps.
- **Online.** Hopper-v5, 100k env steps (ROER: 1M), ROER's settings for Hopper except the weight
  floor (quick preset: each per_type's own lower clip; see docs/presets.md), evaluation every 5000
  steps on 10 episodes; a seed's score is the mean return of its last 10 evaluations (ROER's rule).
- **Seeds and intervals.** Seeds are vmapped in one program per (task, per_type). Bench cells:
  mean ± half-width of the Student-t 95% interval over seeds. Statistics: `fdivrl compare`'s
  stratified-bootstrap 95% intervals (mean, median, IQM, optimality gap, P(X > Y)).
- **Priority activity.** Every run logs the ESS fraction of its stored priorities; a prioritized
  per_type whose final ESS fraction is ≥ 0.98 trained with uniform replay and is marked
  `inactive` — its score is not a result about that per_type.
"""


def _strip_title(md: str) -> str:
    """A table file without its first-level title (the page gives its own)."""
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def _demote(md: str) -> str:
    """Headings one level down, so a compare report nests under the page's section."""
    return "\n".join("#" + line if line.startswith("#") else line for line in md.splitlines()) + "\n"


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def machine_of(config_json: dict[str, Any]) -> str:
    """Where a run trained, from the platform its config.json recorded (the machine, not the share of its
    cores a pinned run had)."""
    platform_ = config_json.get("platform", {})
    if not platform_:
        return "unrecorded machine"
    backend = platform_.get("jax_backend")
    if backend not in (None, "cpu") and platform_.get("jax_devices"):
        return f"{platform_['jax_devices'][0]} {str(backend).upper()}"
    cores = platform_.get("cpu_count")
    # runs made before fdivrl recorded the CPU model say so, rather than read as another kind of machine
    name = platform_.get("cpu_model") or f"{platform_.get('machine', '?')} CPU (model not recorded)"
    return name + (f", {cores} core{'s' * (cores != 1)}" if cores else "")


def run_provenance(stats: dict[str, Any]) -> dict[str, Any]:
    """The commits, machines and wall time of the runs a compare report used (their config.json and summary.json)."""
    commits, machines, seconds, untimed = set(), set(), 0.0, 0
    for used in stats.get("used", []):
        run = Path(used["path"])
        config = _read(run / "config.json")
        commits.add(str(config.get("versions", {}).get("fdivrl_source")))
        machines.add(machine_of(config))
        wall = _read(run / "summary.json").get("wall_s")
        if wall is None:
            untimed += 1
        else:
            seconds += float(wall)
    return {
        "commits": commits,
        "machines": machines,
        "run_seconds": seconds,
        "runs_untimed": untimed,
        "runs": len(stats.get("used", [])),
    }


def _seed_span(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    return (
        f"{seeds[0]}–{seeds[-1]}"
        if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2
        else (", ".join(map(str, seeds)))
    )


def _where(machines: dict[str, dict[str, set[int]]]) -> str:
    """Which seeds ran on which machine or, where groups of the same seeds ran on different machines,
    which per_types did."""
    seeds = {m: set().union(*by_type.values()) for m, by_type in machines.items()}
    ordered = sorted(machines, key=lambda m: (min(seeds[m]), m))
    if sum(map(len, seeds.values())) == len(set().union(*seeds.values())):  # each seed on one machine
        return "; ".join(f"{_seed_span(list(seeds[m]))} on {m}" for m in ordered)
    return "; ".join(f"{', '.join(sorted(machines[m]))} on {m}" for m in ordered)


def run_settings(stats: dict[str, Any]) -> list[str]:
    """What the runs of one compare report trained for, one line per task and distinct setting (seeds
    pooled over its runs, and where they ran when that differs), so the page states the steps it was made
    with instead of repeating the script's defaults."""
    found: dict[str, dict[str, dict[str, dict[str, set[int]]]]] = {}  # task -> setting -> machine -> per_type -> seeds
    per_type_seeds: dict[str, dict[str, set[int]]] = {}  # task -> per_type -> seeds
    for used in stats.get("used", []):
        config_json = _read(Path(used["path"]) / "config.json")
        config = config_json.get("config", {})
        if not config:
            continue
        kind = "env steps" if config.get("mode") == "online" else "gradient steps"
        setting = (
            f"{config['steps']:,} {kind}, {{seeds}}, evaluation every {config['eval_every']:,}"
            f" steps on {config['eval_episodes']} episodes"
        )
        if config.get("mode") == "offline":
            setting += f", final evaluation on {config['final_eval_episodes']}"
        if "layer_norm" in config.get("learner", {}):  # the learner differs between tasks (results.sh)
            nets = config["learner"]["layer_norm"]
            names = " and ".join([", ".join(nets[:-1]), nets[-1]] if len(nets) > 1 else nets)
            setting += f", LayerNorm in the {names} network{'s' * (len(nets) > 1)}" if nets else ", no LayerNorm"
        task = str(config.get("dataset") or config.get("env"))
        machines = found.setdefault(task, {}).setdefault(setting, {})
        on = machines.setdefault(machine_of(config_json), {})
        on.setdefault(str(config.get("per_type")), set()).update(config["seeds"])
        per_type_seeds.setdefault(task, {}).setdefault(str(config.get("per_type")), set()).update(config["seeds"])
    lines = []
    for task, settings in sorted(found.items()):
        counts = sorted({len(s) for s in per_type_seeds[task].values()})
        seeds = f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} seeds per per_type"
        texts = []
        for setting, machines in settings.items():
            texts.append(setting.format(seeds=f"{seeds} ({_where(machines)})" if len(machines) > 1 else seeds))
        lines.append(f"{task}: {'; '.join(sorted(texts))}")
    return lines


def render(out: Path, page: Path, provenance: dict[str, Any]) -> str:
    """The page's Markdown from the files under `out`; links are relative to the page."""
    rel = Path("..") / out if not out.is_absolute() else out
    commits = ", ".join(f"`{c}`" for c in provenance.get("commits", [])) or "unknown"
    machines = " and ".join(provenance.get("machines", [])) or "?"
    hours = provenance.get("run_seconds", 0) / 3600
    untimed = provenance.get("runs_untimed", 0)
    not_counted = (
        f" ({untimed} of the {provenance.get('runs', '?')} run directories were made before fdivrl recorded"
        " wall time and are not counted; the notes below give their times)"
        if untimed
        else ""
    )
    parts = [
        "# Results: do f-divergence priorities help, on the data fdivrl can make?\n",
        f"Made by `bash benchmarks/results.sh` (fdivrl's own `bench` and `compare`) from commit(s) {commits}"
        f" on {machines}; the runs took {hours:.1f} h of wall time in all"
        f" (each run's `wall_s`, resumed segments summed){not_counted}. "
        "Every table below is copied from the files under `benchmarks/results/`, whose JSON keeps each"
        " seed's score and the run directory it came from.\n",
        "## Protocol\n",
        PROTOCOL,
    ]
    for key, title, bench, compare in SECTIONS:
        bench_md = out / f"{bench}.md"
        stats_md = out / compare / "stats.md"
        if not bench_md.exists() and not stats_md.exists():
            parts.append(f"## {title}\n\nNot run yet (`bash benchmarks/results.sh` makes it).\n")
            continue
        parts.append(f"## {title}\n")
        settings = provenance.get("settings", {}).get(key, [])
        if settings:
            parts.append("Runs (from their config.json):\n\n" + "".join(f"- {line}\n" for line in settings))
        if bench_md.exists():
            parts.append("### Score table (`fdivrl bench`)\n\n" + _demote(_strip_title(bench_md.read_text())))
        if stats_md.exists():
            parts.append("### Statistics (`fdivrl compare`)\n\n" + _demote(_demote(_strip_title(stats_md.read_text()))))
            for png in sorted((out / compare).glob("*.png")):
                parts.append(f"![{png.stem}]({rel / compare / png.name})\n")
    notes = out / "notes.md"
    parts.append("## What the numbers show, and what they do not\n")
    parts.append(notes.read_text() if notes.exists() else "Not written yet.\n")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--page", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    prov_path = args.out / "provenance.json"
    provenance = _read(prov_path)
    reports = {key: _read(args.out / compare / "stats.json") for key, _title, _bench, compare in SECTIONS}
    found = run_provenance({"used": [run for stats in reports.values() for run in stats.get("used", [])]})
    provenance.update(found, commits=sorted(found["commits"]), machines=sorted(found["machines"]))
    provenance["settings"] = {key: run_settings(stats) for key, stats in reports.items() if stats}
    for old in ("seconds", "machine"):  # the script's own time and this machine, kept by earlier versions
        provenance.pop(old, None)
    prov_path.parent.mkdir(parents=True, exist_ok=True)
    prov_path.write_text(json.dumps(provenance, indent=2) + "\n")
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(render(args.out, args.page, provenance))
    print(f"wrote {args.page} from {args.out}")


if __name__ == "__main__":
    main()
