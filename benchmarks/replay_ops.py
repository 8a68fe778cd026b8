"""Micro-benchmark of fdivrl.learning.replay: sample + update per step inside a 1000-step lax.scan.

Shaped like the learner's step: the loss weights only reach a metric, and the fresh priorities do not
depend on them (ROER computes them from the new V), which is the case where a careless read of the
O(N) priority array would make XLA copy it every step. Also reports how many whole-array copies the
compiled program holds (with the state donated, as the learner does: anything above 0 is a per-step
copy of the priority array) and the cost of one O(N) rebuild.

    python benchmarks/replay_ops.py [--capacity 1000000] [--batch 256] [--steps 1000] [--seeds 1]

The last line printed is JSON: per-step milliseconds for uniform, weight (avg) and sample modes.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import jax
import jax.numpy as jnp
from jax import lax

from fdivrl.learning import replay


def _program(cfg: replay.ReplayConfig, batch: int, steps: int, seeds: int):
    def step(state: replay.ReplayState, key: jax.Array):
        k_sample, k_raw = jax.random.split(key)
        idx, loss_w = replay.sample(state, k_sample, batch, cfg)
        raw = 1.0 + 49.0 * jax.random.uniform(k_raw, (batch,)) ** 4  # independent of loss_w
        return replay.update(state, idx, raw, cfg), jnp.mean(loss_w) + jnp.mean(idx)  # keep idx live

    def run(state: replay.ReplayState, key: jax.Array):
        return lax.scan(step, state, jax.random.split(key, steps))

    return jax.vmap(run) if seeds > 1 else run


def _time(fn, *args, repeats: int = 3) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()

    configs = {
        "uniform": replay.ReplayConfig(prioritized=False),
        "weight": replay.ReplayConfig(mode="weight", scheme="avg"),
        "weight_exp": replay.ReplayConfig(mode="weight", scheme="exp"),
        "sample": replay.ReplayConfig(mode="sample"),
    }
    result: dict[str, float | int] = {"capacity": args.capacity, "batch": args.batch, "seeds": args.seeds}
    for name, cfg in configs.items():
        state = replay.init(args.capacity, args.capacity, cfg)
        keys = jax.random.key(0)
        if args.seeds > 1:
            state = replay.replicate(state, args.seeds)
            keys = jax.random.split(keys, args.seeds)
        program = _program(cfg, args.batch, args.steps, args.seeds)
        hlo = jax.jit(program, donate_argnums=0).lower(state, keys).compile().as_text()
        fn = jax.jit(program)  # not donated, so the same state can be timed repeatedly
        big = [leaf.shape for leaf in jax.tree_util.tree_leaves(state) if leaf.size >= args.capacity]
        copies = sum(len(re.findall(rf"f32\[{','.join(map(str, s))}\]\{{[0-9,]*\}} copy\(", hlo)) for s in big)
        ms = _time(fn, state, keys) / args.steps * 1e3
        result[f"{name}_ms_per_step"] = round(ms, 4)
        result[f"{name}_array_copies"] = copies
        print(f"{name:11s} {ms:.4f} ms/step  whole-array copies in program: {copies}", flush=True)

    cfg = configs["sample"]
    state = replay.init(args.capacity, args.capacity, cfg)
    rebuild = jax.jit(lambda s: replay.rebuild(s, cfg))
    result["rebuild_ms"] = round(_time(rebuild, state) * 1e3, 3)
    print(f"rebuild     {result['rebuild_ms']:.3f} ms (O(N), once per chunk)", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
