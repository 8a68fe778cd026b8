"""Groups trained at once in pinned processes (bench --workers) vs one process on all CPUs, in one run.

    python benchmarks/parallel_groups.py [--seeds 3] [--n 1000000] [--chunk 500] [--repeats 3]

One process runs the medium-play group's learner (KL, weight mode, ``--seeds`` vmapped seeds,
AntMaze shapes) on every usable CPU; then one process per CPU, each pinned to its own and started
together, runs the same. Prints seed-steps/s of both and their ratio (what ``fdivrl bench
--workers <CPUs>`` gains over ``--workers 1`` when there are at least as many groups as CPUs).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os

from throughput import make_learner, steps_per_s, synthetic_data


def measure(n: int, seeds: int, chunk: int, repeats: int) -> float:
    return steps_per_s(make_learner("KL", "weight"), synthetic_data(n), list(range(seeds)), chunk, repeats)


def pinned(cpu: int, args: argparse.Namespace, start: mp.synchronize.Barrier, rates: mp.Queue) -> None:
    os.sched_setaffinity(0, {cpu})  # before JAX starts its thread pool
    import jax

    jax.block_until_ready(synthetic_data(args.n).rewards)  # the data is made before the clock starts
    start.wait()
    rates.put(measure(args.n, args.seeds, args.chunk, args.repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="vmapped seeds per group")
    parser.add_argument("--n", type=int, default=1_000_000, help="dataset size (transitions)")
    parser.add_argument("--chunk", type=int, default=500, help="fused steps per jitted call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))

    ctx = mp.get_context("spawn")  # the children must start JAX after pinning, so before this process does
    start, rates = ctx.Barrier(len(cpus)), ctx.Queue()
    children = [ctx.Process(target=pinned, args=(c, args, start, rates)) for c in cpus]
    for child in children:
        child.start()
    per_process = [rates.get() for _ in children]
    for child in children:
        child.join()
    together = sum(per_process)
    alone = measure(args.n, args.seeds, args.chunk, args.repeats)

    out = {
        "cpus": len(cpus),
        "seeds": args.seeds,
        "n": args.n,
        "seed_steps_per_s_one_process": alone,
        "seed_steps_per_s_pinned_processes": together,
        "per_pinned_process": per_process,
        "pinned_vs_one_process": together / alone,
    }
    print(f"{'one process, ' + str(len(cpus)) + ' CPUs':28s} {alone:8.1f} seed-steps/s")
    print(f"{str(len(cpus)) + ' pinned processes':28s} {together:8.1f} seed-steps/s")
    print(f"{'throughput ratio':28s} {out['pinned_vs_one_process']:8.3f}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
