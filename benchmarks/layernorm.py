"""LayerNorm forward+backward on XLA CPU: flax's nn.LayerNorm against fdivrl.learning.networks.LayerNorm.

    python benchmarks/layernorm.py [--batch 256] [--features 256] [--steps 300] [--repeats 11]

Each variant runs `steps` gradient steps of sum(relu(LN(x))·w) w.r.t. x, scale and bias inside one
jitted lax.scan, on one (batch, features) activation and on two of them vmapped with per-head
parameters (the critic's layout). relu alone (same loss, no LayerNorm) gives the scale. The variants
run interleaved, `repeats` times each; reported are medians of wall and process-CPU microseconds
per step (CPU time is the steadier number on a shared machine). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fdivrl.learning.networks import LayerNorm


def _program(apply: Callable, params: dict, x: jax.Array, w: jax.Array, steps: int, heads: int) -> Callable:
    f = apply if heads == 1 else jax.vmap(apply)
    grad = jax.grad(lambda p, x: jnp.sum(jax.nn.relu(f(p, x)) * w), argnums=(0, 1))

    @jax.jit
    def run(p, x):
        def body(carry, _):
            p, x = carry
            gp, gx = grad(p, x)
            return (jax.tree.map(lambda a, b: a - 1e-6 * b, p, gp), x - 1e-6 * gx), None

        return lax.scan(body, (p, x), None, length=steps)[0]

    jax.block_until_ready(run(params, x))  # compile + warm-up
    return lambda: jax.block_until_ready(run(params, x))


def measure(batch: int, features: int, heads: int, steps: int, repeats: int) -> dict[str, dict[str, float]]:
    k_x, k_w, k_s, k_b = jax.random.split(jax.random.key(0), 4)
    lead = (heads,) if heads > 1 else ()
    x = jax.random.normal(k_x, (*lead, batch, features)) + 0.5
    w = jax.random.normal(k_w, (*lead, batch, features))
    params = {
        "scale": 1.0 + 0.1 * jax.random.normal(k_s, (*lead, features)),
        "bias": 0.1 * jax.random.normal(k_b, (*lead, features)),
    }
    variants = {
        "relu": lambda p, x: x,
        "flax": lambda p, x: nn.LayerNorm().apply({"params": p}, x),
        "fdivrl": lambda p, x: LayerNorm().apply({"params": p}, x),
    }
    runs = {name: _program(f, params, x, w, steps, heads) for name, f in variants.items()}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            wall[name].append((time.perf_counter() - t0) / steps * 1e6)
            cpu[name].append((time.process_time() - c0) / steps * 1e6)
    return {name: {"wall_us": float(np.median(wall[name])), "cpu_us": float(np.median(cpu[name]))} for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300, help="fused fwd+bwd steps per jitted call")
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()

    out: dict[str, float | int] = {"batch": args.batch, "features": args.features}
    for heads in (1, 2):
        res = measure(args.batch, args.features, heads, args.steps, args.repeats)
        tag = "" if heads == 1 else "_2heads"
        shape = f"{'2x' if heads > 1 else ''}({args.batch}, {args.features})"
        print(f"fwd+bwd per step on {shape}, median of {args.repeats}:")
        for name, r in res.items():
            print(f"  {name:8s} {r['wall_us']:8.1f} us wall {r['cpu_us']:8.1f} us cpu")
            out[f"{name}{tag}_wall_us"] = r["wall_us"]
            out[f"{name}{tag}_cpu_us"] = r["cpu_us"]
        for clock in ("wall", "cpu"):
            out[f"speedup{tag}_{clock}"] = res["flax"][f"{clock}_us"] / res["fdivrl"][f"{clock}_us"]
            # LayerNorm's own cost: time above the relu-only program
            extra_flax = res["flax"][f"{clock}_us"] - res["relu"][f"{clock}_us"]
            extra_ours = res["fdivrl"][f"{clock}_us"] - res["relu"][f"{clock}_us"]
            out[f"ln_cost_ratio{tag}_{clock}"] = extra_flax / max(extra_ours, 1e-9)
        print(
            f"  flax/fdivrl time {out[f'speedup{tag}_cpu']:.2f}x (cpu), LayerNorm cost above relu "
            f"{out[f'ln_cost_ratio{tag}_cpu']:.2f}x lower (cpu)"
        )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
