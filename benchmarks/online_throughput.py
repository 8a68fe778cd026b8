"""Online loop cost vs its updates alone, measured in one run on the same machine.

    python benchmarks/online_throughput.py [--env Hopper-v5] [--steps 3000] [--per-type KL]

(a) updates alone: the online learner's fused program (insert 10 transitions + 10 SAC+ROER updates,
    the same program the training loop calls) on a filled buffer, timed after compilation;
(b) the whole online loop through `fdivrl.training.loop.train` at UTD 1 (host env stepping, exploration actions,
    transfers, logging), timed as the difference of two runs of different lengths so compilation and
    setup cancel out.
The last line is one JSON object: env_steps_per_s, updates_per_s (loop), updates_per_s_alone,
loop_overhead = loop time per update / update time alone − 1 (target ≤ 0.25).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fdivrl import config as C
from fdivrl.core import divergences as D
from fdivrl.learning.learner import Batch, Learner
from fdivrl.training.loop import train
from fdivrl.training.online import SeedEnvs, gym_env_info


def online_config(env: str, per_type: str, steps: int) -> C.TrainConfig:
    return C.with_overrides(
        C.preset_config("quick", None, per_type, mode="online", env=env),
        top={"steps": steps, "eval_episodes": 0, "final_eval_episodes": 0, "eval_every": 10**9},
        online={"start_steps": 0, "buffer_size": 100_000, "checkpoint_every": 10**9},
    )


def env_transitions(cfg: C.TrainConfig, n: int) -> Batch:
    """n real transitions of the env under random actions (one seed axis), so the timed updates see
    the same kind of numbers as the loop's."""
    env = gym_env_info(cfg.env, cfg.obs_keys)
    envs = SeedEnvs(env, (0,), reset_seed=0, reward_shift=cfg.reward_shift)
    rows = [envs.step(envs.random_actions()) for _ in range(n)]
    envs.close()
    o, r, o2, m = (np.stack([row[j][0] for row in rows]) for j in range(4))
    a = np.zeros((n, env.act_dim), np.float32)  # actions are not kept by SeedEnvs.step; zeros do not change the cost
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32)[None], Batch(o, a, r, o2, m))


def updates_alone(cfg: C.TrainConfig, n_calls: int) -> float:
    """Updates/s of the fused insert+update program (one seed) on a buffer of real env transitions."""
    env = gym_env_info(cfg.env, cfg.obs_keys)
    learner = Learner(D.get(cfg.per_type), cfg.divergence, cfg.replay, cfg.learner, env.obs_dim, env.act_dim)
    k = cfg.chunk
    data = env_transitions(cfg, 5000)
    cap = data.rewards.shape[1]
    state = learner.init_seeds([0], cap, cap, online=True)
    program = learner.compiled_online(k * cfg.online.utd)
    new = jax.tree_util.tree_map(lambda x: x[:, :k], data)
    state, data, _ = program(state, data, new, jnp.asarray(0, jnp.int32))  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for i in range(n_calls):
        state, data, _ = program(state, data, new, jnp.asarray((i * k) % cap, jnp.int32))
        jax.block_until_ready(state.actor.params)  # the loop must wait too: the next action needs them
    return n_calls * k * cfg.online.utd / (time.perf_counter() - t0)


def loop_seconds(cfg: C.TrainConfig) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(cfg, Path(tmp) / "run")
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--per-type", default="KL")
    parser.add_argument("--steps", type=int, default=3000, help="Env steps timed in the loop (b).")
    args = parser.parse_args()
    short, long = 500, 500 + args.steps
    cfg = online_config(args.env, args.per_type, long)
    alone = updates_alone(cfg, args.steps // cfg.chunk)
    print(f"updates alone: {alone:.1f} updates/s ({cfg.per_type}, grad_penalty {cfg.learner.grad_penalty})")
    t_short = loop_seconds(online_config(args.env, args.per_type, short))
    t_long = loop_seconds(cfg)
    per_step = (t_long - t_short) / args.steps
    loop_rate = 1.0 / per_step
    overhead = per_step / (cfg.online.utd / alone) - 1.0  # loop time per step / its updates' time alone
    print(
        f"online loop: {loop_rate:.1f} env steps/s at UTD {cfg.online.utd} "
        f"({t_short:.1f}s for {short} steps, {t_long:.1f}s for {long})"
    )
    print(f"loop overhead over its updates: {100 * overhead:.1f}% (target <= 25%)")
    print(
        json.dumps(
            {
                "env": args.env,
                "per_type": cfg.per_type,
                "utd": cfg.online.utd,
                "chunk": cfg.chunk,
                "env_steps_per_s": round(loop_rate, 2),
                "updates_per_s": round(loop_rate * cfg.online.utd, 2),
                "updates_per_s_alone": round(alone, 2),
                "loop_overhead": round(overhead, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
