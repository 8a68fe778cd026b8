"""AntMaze stand-in generation speed: env steps/s of `fdivrl data antmaze`'s collection, in one run.

    python benchmarks/antmaze_gen.py [--task umaze] [--steps 50000] [--envs 10] [--walker-file PATH]

Collects ``--steps`` transitions twice into a temporary minari root with the generator itself
(`fdivrl.data.antmaze.generator.generate`, reference episodes cut to 10): once driven by the walker (batched,
jitted policy calls, as `fdivrl data antmaze` does), once by a policy that returns zeros (the cost of
the vector envs, the waypoint controller and the writer alone). The last line is one JSON object:
steps_per_s (walker; target ≥ 2000 on 2 cores), steps_per_s_env_only, and policy_share = the
fraction of collection time spent in the walker's calls.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from fdivrl.data.antmaze import generator as antmaze_gen
from fdivrl.data.antmaze import walker

TARGET = 2000.0


class Zeros:
    """A policy that costs nothing: isolates the env, controller and writer cost."""

    def __call__(self, ant_obs: np.ndarray, goal_delta: np.ndarray) -> np.ndarray:
        return np.zeros((len(ant_obs), walker.ACT_DIM), np.float32)


def collect_rate(task: str, steps: int, envs: int, policy) -> float:
    with tempfile.TemporaryDirectory() as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        plot = Path(root) / "visitation.png"
        summary = antmaze_gen.generate(task, steps, 0, policy, n_envs=envs, ref_episodes=10, plot_path=plot)
    return float(summary["collect_steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="umaze")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--envs", type=int, default=antmaze_gen.DEFAULT_N_ENVS)
    parser.add_argument("--walker-file", type=Path, default=None)
    args = parser.parse_args()
    policy = walker.load_walker(args.walker_file)
    collect_rate(args.task, 2 * args.envs, args.envs, policy)  # compile the policy outside the timing
    with_walker = collect_rate(args.task, args.steps, args.envs, policy)
    env_only = collect_rate(args.task, args.steps, args.envs, Zeros())
    result = {
        "task": args.task,
        "steps": args.steps,
        "n_envs": args.envs,
        "steps_per_s": round(with_walker, 1),
        "steps_per_s_env_only": round(env_only, 1),
        "policy_share": round(1.0 - with_walker / env_only, 3),
        "target_steps_per_s": TARGET,
        "meets_target": with_walker >= TARGET,
    }
    print(f"walker-driven collection: {with_walker:.0f} steps/s (target ≥ {TARGET:.0f}); env alone {env_only:.0f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
