"""A run's start with a cold vs a warm compilation cache (fdivrl/compile_cache.py), in one run.

    python benchmarks/compile_cache.py [--per-type KL] [--seeds 3] [--chunk 20]

Each measurement is a fresh Python process (JAX keeps what it compiled for the life of a
process) that builds the umaze quick preset's learner (AntMaze shapes), initializes ``--seeds``
vmapped seeds and runs one ``--chunk``-step update: everything a training run does before its
first logged step except loading data. Three processes, one after another: the cache off, the
cache cold (a fresh directory), the cache warm (the same directory again). Prints the seconds
of each phase (setup_s: data and learner construction, after JAX's import; process_s: the whole
process, imports included) and the warm/cold ratios. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fdivrl import compile_cache

HERE = Path(__file__).resolve().parent


def child(per_type: str, seeds: int, chunk: int) -> None:
    """One start, timed by phase; prints one JSON line."""
    compile_cache.enable()
    t0 = time.perf_counter()
    import jax
    from throughput import make_learner, synthetic_data

    data = synthetic_data(10_000)
    jax.block_until_ready(data.rewards)
    learner = make_learner(per_type, "weight")
    t1 = time.perf_counter()
    state = learner.init_seeds(list(range(seeds)), data.rewards.shape[0])
    jax.block_until_ready(state)
    t2 = time.perf_counter()
    state, metrics = learner.compiled_update(chunk)(state, data)
    jax.block_until_ready(metrics)
    t3 = time.perf_counter()
    print(json.dumps({"setup_s": t1 - t0, "init_s": t2 - t1, "first_chunk_s": t3 - t2}))


def start(args: argparse.Namespace, cache: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env[compile_cache.ENV] = cache
    argv = [sys.executable, __file__, "--child", "--per-type", args.per_type, "--seeds", str(args.seeds)]
    t0 = time.perf_counter()
    done = subprocess.run([*argv, "--chunk", str(args.chunk)], env=env, capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", default="KL")
    parser.add_argument("--seeds", type=int, default=3, help="vmapped seeds")
    parser.add_argument("--chunk", type=int, default=20, help="fused steps in the first update call (few)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(HERE))
        child(args.per_type, args.seeds, args.chunk)
        return
    with tempfile.TemporaryDirectory(prefix="fdivrl-compile-cache-bench-") as cache:
        runs = {"off": start(args, "off"), "cold": start(args, cache), "warm": start(args, cache)}
        entries = len(list(Path(cache).glob("*-cache")))
    for name, phases in runs.items():
        print(f"{name:>5}: " + "  ".join(f"{k} {v:6.2f}" for k, v in phases.items()))
    ratios = {k: runs["warm"][k] / runs["cold"][k] for k in ("init_s", "first_chunk_s", "process_s")}
    print(
        f"warm / cold: init {ratios['init_s']:.3f}, first chunk {ratios['first_chunk_s']:.3f}, "
        f"whole process {ratios['process_s']:.3f}; {entries} programs cached"
    )
    print(json.dumps({"runs": runs, "warm_over_cold": ratios, "programs": entries, "args": vars(args)}))


if __name__ == "__main__":
    main()
