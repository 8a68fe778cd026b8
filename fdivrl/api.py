"""fdivrl from Python (a notebook, a script): what `fdivrl train`, `bench` and `compare` do, as
functions of a config that return what the commands print.

    import fdivrl
    cfg = fdivrl.make_config("JS-exact", dataset="fdivrl/antmaze/umaze-v1", steps=20_000, seeds=3)
    summary = fdivrl.train(cfg, "runs/js-exact")
    sweep = fdivrl.bench("antmaze", ["KL", "JS-exact"], seeds=3, tasks=["umaze"])
    comparison = fdivrl.compare(["KL", "JS-exact"], results="results")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fdivrl import config as C


def make_config(
    per_type: str = "KL",
    dataset: str | None = None,
    mode: str = "offline",
    env: str | None = None,
    preset: str = "quick",
    seeds: int | Sequence[int] = 1,
    **options: Any,
) -> C.TrainConfig:
    """A preset's config with `fdivrl train`'s options (steps=, beta=, priority_mode=, ...) applied
    and validated; `seeds` is a count (0..n-1) or the seeds themselves."""
    dataset = dataset or (None if mode == "online" else C.DEFAULT_DATASET)
    seed_ids = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    cfg = C.preset_config(preset, dataset, per_type, mode=mode, env=env)
    cfg = C.with_overrides(cfg, top={"seeds": seed_ids, "dataset": dataset, "env": env})
    unknown = sorted(set(options) - {o.key for o in C.TRAIN_OPTIONS})
    if unknown:
        raise TypeError(f"make_config() got unknown options {unknown}; see fdivrl.config.TRAIN_OPTIONS")
    return C.apply_options(cfg, options)


def train(config: C.TrainConfig, out: str | Path | None = None, resume: bool = False) -> dict[str, Any]:
    """Train and write the run directory (default: the CLI's); returns its summary.json."""
    from fdivrl.training.loop import default_out
    from fdivrl.training.loop import train as run_training

    return run_training(config, Path(out) if out is not None else default_out(config), resume=resume)


def bench(
    suite: str,
    per_types: Sequence[str],
    seeds: int | Sequence[int] = 3,
    preset: str = "quick",
    mode: str | None = None,
    results: str | Path = "results",
    tasks: Sequence[str] = (),
    datasets: Sequence[str] = (),
    seeds_per_run: int | None = None,
    **overrides: Any,
) -> Any:
    """Run a suite like `fdivrl bench` (finished runs skipped) and return its Sweep (table, outcomes).

    `seeds_per_run` splits each (task, per_type)'s seeds into runs of that many (the table pools them).
    `overrides` are bench's per-group options (analysis.bench.TRAIN_OVERRIDES: steps, chunk,
    eval_every, eval_episodes — the final evaluation's too, as on the command line — layer_norm,
    clip_targets)."""
    from fdivrl.analysis import bench as B

    seed_ids = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    spec, mode, groups, missing = B.prepare(
        suite,
        per_types,
        seed_ids,
        preset,
        mode,
        Path(results),
        tasks=tasks,
        datasets=datasets,
        seeds_per_run=seeds_per_run,
        **overrides,
    )
    return B.run_sweep(spec, mode, groups, missing, Path(results))


def compare(
    per_types: Sequence[str],
    results: str | Path = "results",
    metric: str = "auto",
    score: str = "auto",
    out: str | Path | None = None,
    reps: int = 10_000,
    seed: int = 0,
) -> Any:
    """`fdivrl compare`'s statistics as a Comparison; with `out`, also its tables and plots there."""
    from fdivrl.analysis import compare as K

    comparison = K.compare(Path(results), tuple(per_types), metric=metric, reps=reps, seed=seed, score=score)
    if out is not None:
        K.write_files(comparison, Path(out))
    return comparison
