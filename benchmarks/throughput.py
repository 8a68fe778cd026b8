"""Offline learner throughput, measured in one run on one machine (ratios, not absolute claims).

    python benchmarks/throughput.py [--n 1000000] [--chunk 500] [--repeats 3]

Prints gradient steps/s of the offline learner on an N-transition dataset (AntMaze shapes:
obs 31, act 8) for uniform replay, ROER weight mode and sum-tree sample mode, then 4 seeds
vmapped in one program against the same 4 seeds run one after another, and the compute limit
estimated from the compiled update's FLOPs and this machine's measured matmul rate. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from fdivrl import config as C
from fdivrl.learning.learner import Batch, Learner
from fdivrl.training import loop


def synthetic_data(n: int, obs_dim: int = 31, act_dim: int = 8, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        observations=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-1, 1, (n, act_dim)), jnp.float32),
        rewards=jnp.asarray(rng.integers(0, 2, n) - 1.0, jnp.float32),
        next_observations=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        masks=jnp.ones(n, jnp.float32),
    )


def make_learner(per_type: str, mode: str, layer_norm: tuple[str, ...] = ("value",)) -> Learner:
    """The learner the umaze quick preset trains (its clips derived by the config, as in a run)."""
    cfg = C.preset_config("quick", "D4RL/antmaze/umaze-v1", per_type)
    cfg = C.with_overrides(cfg, replay={"mode": mode}, learner={"layer_norm": layer_norm})
    return loop.make_learner(cfg, obs_dim=31, act_dim=8)


def steps_per_s(learner: Learner, data: Batch, seeds: list[int], chunk: int, repeats: int) -> float:
    """Gradient steps per second per seed-program (each seed's steps counted)."""
    n = data.rewards.shape[0]
    program = learner.compiled_update(chunk)
    state = learner.init_seeds(seeds, n)
    state, m = program(state, data)  # compile + warm-up
    jax.block_until_ready(m)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, m = program(state, data)
        jax.block_until_ready(m)
        best = max(best, chunk * len(seeds) / (time.perf_counter() - t0))
    return best


def matmul_gflops(size: int = 256, batch: int = 64, repeats: int = 20) -> float:
    """Measured fp32 rate of (batch of) size×size matmuls: the layer shape of the learner."""
    a = jnp.ones((batch, size, size), jnp.float32)
    f = jax.jit(lambda x: jnp.einsum("bij,bjk->bik", x, x))
    jax.block_until_ready(f(a))
    t0 = time.perf_counter()
    for _ in range(repeats):
        r = f(a)
    jax.block_until_ready(r)
    return 2 * size**3 * batch * repeats / (time.perf_counter() - t0) / 1e9


def update_flops(learner: Learner, data: Batch) -> float:
    n = data.rewards.shape[0]
    state = jax.tree_util.tree_map(lambda x: x[0], learner.init_seeds([0], n))
    compiled = jax.jit(learner.offline_step).lower(state, data).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="dataset size (transitions)")
    parser.add_argument("--chunk", type=int, default=500, help="fused steps per jitted call")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    data = synthetic_data(args.n)
    out: dict[str, float] = {"n": args.n, "chunk": args.chunk}
    uniform = make_learner("uniform", "weight")
    out["updates_per_s_uniform"] = steps_per_s(uniform, data, [0], args.chunk, args.repeats)
    # LayerNorm is cheap in FLOPs but its row reductions are slow on XLA CPU. fdivrl puts it on V
    # only (XQL's offline setting); measure it on every network (fdivrl before 2026-12) and nowhere
    every = make_learner("uniform", "weight", layer_norm=("actor", "critic", "value"))
    out["updates_per_s_uniform_layernorm_everywhere"] = steps_per_s(every, data, [0], args.chunk, args.repeats)
    out["layernorm_value_only_vs_everywhere"] = (
        out["updates_per_s_uniform"] / out["updates_per_s_uniform_layernorm_everywhere"]
    )
    no_ln = make_learner("uniform", "weight", layer_norm=())
    out["updates_per_s_uniform_no_layernorm"] = steps_per_s(no_ln, data, [0], args.chunk, args.repeats)
    out["updates_per_s_weight"] = steps_per_s(make_learner("KL", "weight"), data, [0], args.chunk, args.repeats)
    out["updates_per_s_sample"] = steps_per_s(make_learner("KL", "sample"), data, [0], args.chunk, args.repeats)
    out["weight_vs_uniform"] = out["updates_per_s_uniform"] / out["updates_per_s_weight"]
    out["sample_vs_uniform"] = out["updates_per_s_uniform"] / out["updates_per_s_sample"]
    for k in (
        "updates_per_s_uniform",
        "updates_per_s_uniform_layernorm_everywhere",
        "updates_per_s_uniform_no_layernorm",
        "updates_per_s_weight",
        "updates_per_s_sample",
    ):
        print(f"{k:28s} {out[k]:8.1f} steps/s")
    print(f"{'LN on V only / everywhere':28s} {out['layernorm_value_only_vs_everywhere']:8.3f}")
    print(f"{'time ratio weight/uniform':28s} {out['weight_vs_uniform']:8.3f}")
    print(f"{'time ratio sample/uniform':28s} {out['sample_vs_uniform']:8.3f}   (target <= 1.15)")

    kl = make_learner("KL", "weight")
    sequential = 4 / sum(1.0 / steps_per_s(kl, data, [s], args.chunk, args.repeats) for s in range(4))
    vmapped = steps_per_s(kl, data, [0, 1, 2, 3], args.chunk, args.repeats)
    out["updates_per_s_vmap4"] = vmapped
    out["updates_per_s_sequential4"] = sequential
    out["vmap4_vs_sequential"] = vmapped / sequential
    print(f"{'4 seeds vmapped':28s} {vmapped:8.1f} seed-steps/s")
    print(f"{'4 seeds sequential':28s} {sequential:8.1f} seed-steps/s")
    print(f"{'throughput ratio vmap4/seq':28s} {out['vmap4_vs_sequential']:8.3f}   (target >= 1.6)")

    flops = update_flops(uniform, data)
    gflops = matmul_gflops()
    out["gflop_per_update"] = flops / 1e9
    out["machine_gflops_256"] = gflops
    out["compute_limit_updates_per_s"] = gflops * 1e9 / flops
    out["uniform_vs_compute_limit"] = out["updates_per_s_uniform"] / out["compute_limit_updates_per_s"]
    flops_no_ln = update_flops(no_ln, data)
    out["compute_limit_no_layernorm"] = gflops * 1e9 / flops_no_ln
    out["uniform_no_layernorm_vs_compute_limit"] = (
        out["updates_per_s_uniform_no_layernorm"] / out["compute_limit_no_layernorm"]
    )
    print(f"{'FLOPs per update (XLA)':28s} {flops / 1e9:8.3f} GFLOP")
    print(f"{'256x256 matmul rate':28s} {gflops:8.1f} GFLOP/s")
    print(f"{'compute limit':28s} {out['compute_limit_updates_per_s']:8.1f} updates/s")
    print(f"{'uniform / compute limit':28s} {out['uniform_vs_compute_limit']:8.3f}   (target >= 0.5)")
    print(f"{'same, without LayerNorm':28s} {out['uniform_no_layernorm_vs_compute_limit']:8.3f}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
