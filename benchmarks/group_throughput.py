"""How long one results.sh group takes on this machine: the bench's own learners, timed without a dataset.

    python benchmarks/group_throughput.py [--dataset fdivrl/antmaze/medium-play-v1] [--layer-norm critic,value]
        [--per-types KL,uniform,JS-exact,sigmoid,PER,JS] [--seeds 3] [--steps 300000] [--n 1000000]

For each per_type it builds the learner `fdivrl bench antmaze --preset quick` trains on that
dataset (the preset's hyperparameters, replay mode and chunk, the given LayerNorm networks), runs
its fused update on an N-transition synthetic dataset of the AntMaze shapes with the seeds vmapped,
and prints group steps/s (all seeds advance one step), seed-steps/s and the hours a group of
`--steps` gradient steps would spend in updates here (evaluations not counted). Run it on the CPU
and on an accelerator to compare. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform

import jax
from throughput import steps_per_s, synthetic_data

from fdivrl import config as C
from fdivrl.runs.provenance import cpu_model
from fdivrl.training import loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fdivrl/antmaze/medium-play-v1")
    parser.add_argument("--layer-norm", default="critic,value", help="comma list of actor, critic, value, or none")
    parser.add_argument("--per-types", default="KL,uniform,JS-exact,sigmoid,PER,JS")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300_000, help="gradient steps of the group to project")
    parser.add_argument("--n", type=int, default=1_000_000, help="dataset size (transitions)")
    parser.add_argument("--obs-dim", type=int, default=31, help="AntMaze: achieved goal 2 + state 27 + goal 2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    layer_norm = () if args.layer_norm == "none" else tuple(args.layer_norm.split(","))
    data = synthetic_data(args.n, obs_dim=args.obs_dim)
    device = jax.devices()[0]
    out: dict = {
        "dataset": args.dataset,
        "layer_norm": list(layer_norm),
        "seeds": args.seeds,
        "n": args.n,
        "device": f"{device.platform}:{device.device_kind}",
        "cpu": cpu_model().get("cpu_model") or platform.machine(),
        "jax": jax.__version__,
        "groups": {},
    }
    print(f"{out['device']}  jax {jax.__version__}  {args.seeds} seeds vmapped  N={args.n}")
    for per_type in args.per_types.split(","):
        cfg = C.preset_config("quick", args.dataset, per_type)
        cfg = C.with_overrides(cfg, learner={"layer_norm": layer_norm})
        learner = loop.make_learner(cfg, obs_dim=args.obs_dim, act_dim=8)
        seed_steps = steps_per_s(learner, data, list(range(args.seeds)), cfg.chunk, args.repeats)
        group = seed_steps / args.seeds
        hours = args.steps / group / 3600
        out["groups"][per_type] = {
            "mode": cfg.replay.mode,
            "chunk": cfg.chunk,
            "group_steps_per_s": round(group, 2),
            "seed_steps_per_s": round(seed_steps, 2),
            "update_hours_per_group": round(hours, 3),
        }
        print(
            f"{per_type:9s} {cfg.replay.mode:7s} {group:9.1f} group steps/s {seed_steps:9.1f} seed-steps/s "
            f"{hours:7.2f} h per {args.steps} steps"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
