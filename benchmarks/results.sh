#!/usr/bin/env bash
# Regenerates the results page (docs/results.md, benchmarks/results/) from a checkout, with fdivrl's
# own commands. Resumable: run it again after an interruption (Ctrl-C or SIGTERM checkpoint the run
# under way) and finished runs are skipped, interrupted ones resumed. The run directories go to
# $RUNS; their records (config, metrics, eval, summary: a few hundred KB) are committed so that every
# cell traces back to its summary.json and a fresh checkout skips what is finished, their checkpoints
# are not (.gitignore). The tables, JSON and figures go to benchmarks/results/.
#
#   bash benchmarks/results.sh            # everything (about a day on a 2-core CPU)
#   PART=antmaze bash benchmarks/results.sh   # or PART=antmaze-long, PART=hopper, PART=page (tables and page only)
#   TASKS="umaze" PART=antmaze bash benchmarks/results.sh   # a subset of the quick AntMaze stand-ins
set -euo pipefail
cd "$(dirname "$0")/.."
FDIVRL=${FDIVRL:-.venv/bin/fdivrl}
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-benchmarks/results/runs}
OUT=benchmarks/results
SEEDS=${SEEDS:-3}
# Hopper: seeds 0-2 trained on a 2-core CPU, 3-5 on a lent NVIDIA H200 (the runs' config.json says where)
HOPPER_SEEDS=${HOPPER_SEEDS:-6}
# seeds are trained in runs of 3 vmapped seeds, so raising SEEDS adds runs beside the finished ones
PER_RUN=3
PART=${PART:-all}
# groups trained at once, each pinned to its share of the CPUs (1.16× on 2 cores: benchmarks/parallel_groups.py)
WORKERS=${WORKERS:-$(nproc)}
# the quick preset (100k gradient steps) learns these stand-ins
DEFAULT_TASKS=(umaze umaze-diverse)
read -r -a TASKS <<< "${TASKS:-${DEFAULT_TASKS[*]}}"
# ...and not medium-play: there XQL's critic (LayerNorm on V only) diverges under KL's and JS-exact's
# priorities (mean Q out of [-100, 0] from ~70k steps, every seed; uniform stays in range), so
# medium-play trains every per_type with LayerNorm on the critic as well (as ReBRAC does), for
# LONG_STEPS, because no learner scored above 0 there by 100k (uniform with XQL's learner, 1 seed,
# reached 0.4 at 250k and 300k; docs/results.md)
LONG_TASKS=(medium-play)
LONG_STEPS=${LONG_STEPS:-300000}
OFFLINE_TYPES=KL,uniform,JS-exact,sigmoid,PER,JS
ONLINE_TYPES=KL,uniform,JS-exact,sigmoid
start=$(date +%s)
# every bench below passes --stop-diverged: a group whose seeds have all diverged ends there (its score,
# marked DIVERGED, is from that step; the cell's note names it) instead of training a learner that
# cannot recover for the rest of its steps (the seed's JS diverges within 4k steps on AntMaze). Groups
# finished before the option existed trained to their end.

antmaze_bench() {  # the quick AntMaze part's bench on the datasets $1, with any further options
  $FDIVRL bench antmaze --datasets "$1" --per-types $OFFLINE_TYPES \
    --seeds "$SEEDS" --seeds-per-run $PER_RUN --preset quick --results "$RUNS/antmaze" --stop-diverged --quiet "${@:2}"
}
long_bench() {  # the same for medium-play's longer runs
  $FDIVRL bench antmaze --datasets "$1" --per-types $OFFLINE_TYPES \
    --seeds "$SEEDS" --seeds-per-run $PER_RUN --preset quick --steps "$LONG_STEPS" --eval-every 50000 \
    --layer-norm value,critic --results "$RUNS/antmaze-long" --stop-diverged --quiet "${@:2}"
}
trains_on() {  # whether the bench of part $1 would train on dataset $2 (its finished runs need no data)
  case $1 in
    antmaze) ! antmaze_bench "$2" --dry-run ;;
    antmaze-long) ! long_bench "$2" --dry-run ;;
  esac > /dev/null 2>&1
}
standins() {  # part $1's tasks (the rest): their dataset ids, generating first the stand-ins that are
  # not here and that the part would train on
  local ids=() task id
  for task in "${@:2}"; do
    id="fdivrl/antmaze/$task-v1"
    if ! $FDIVRL data list | grep -q "$id" && trains_on "$1" "$id"; then
      # async steps each of the 10 envs in its own process: the same data, faster with the cores for it
      $FDIVRL data antmaze "$task" --quiet --vectorization "$( (($(nproc) >= 4)) && echo async || echo sync)" >&2
    fi
    ids+=("$id")
  done
  (IFS=,; echo "${ids[*]}")
}
if [[ $PART == all || $PART == antmaze ]]; then
  # the quick preset: 100k gradient steps, evaluation every 25k on 10 episodes, final one on 50
  antmaze_bench "$(standins antmaze "${TASKS[@]}")" --workers "$WORKERS"
fi
if [[ $PART == all || $PART == antmaze-long ]]; then
  long_bench "$(standins antmaze-long "${LONG_TASKS[@]}")" --workers "$WORKERS"
fi
if [[ $PART == all || $PART == hopper ]]; then
  # online SAC(+ROER) on Hopper-v5, 100k env steps, ROER's score (mean of the last 10 evaluations)
  $FDIVRL bench mujoco --tasks Hopper --per-types $ONLINE_TYPES --seeds "$HOPPER_SEEDS" --seeds-per-run $PER_RUN \
    --preset quick --steps 100000 --results "$RUNS/mujoco" --stop-diverged --quiet --workers "$WORKERS"
fi
# tables, statistics and figures from the runs on disk, then the page
mkdir -p "$OUT"
finished_types() {  # those of the per_types $2 (comma-separated) with a finished run under $1, in $2's order
  # (none where status finds no run directory: it says so and exits non-zero, which must not end the script)
  { $FDIVRL status "$1" --json < /dev/null 2> /dev/null || true; } | $PYTHON -c '
import json, sys
done = {r["per_type"] for r in map(json.loads, sys.stdin) if r["state"] == "finished"}
print(",".join(p for p in sys.argv[1].split(",") if p in done))' "$2"
}
# results dir, its bench table there, the table's name here, compare's folder, per_types
while read -r dir table name compare types; do
  [[ -d $RUNS/$dir ]] || continue
  # bench writes its table when it ends (the committed copy stays until then; the runs are committed)
  if [[ -f $RUNS/$dir/$table.json ]]; then
    for ext in md csv json; do cp "$RUNS/$dir/$table.$ext" "$OUT/$name.$ext"; done
  fi
  # the page is made from the runs finished so far: compare refuses a per_type with none
  types=$(finished_types "$RUNS/$dir" "$types")
  [[ -n $types ]] || continue
  $FDIVRL compare ${types//,/ } --results "$RUNS/$dir" --out "$OUT/$compare" --json < /dev/null > /dev/null
done <<EOF
antmaze bench-antmaze-offline bench-antmaze-offline compare-antmaze $OFFLINE_TYPES
antmaze-long bench-antmaze-offline bench-antmaze-long-offline compare-antmaze-long $OFFLINE_TYPES
mujoco bench-mujoco-online bench-mujoco-online compare-hopper $ONLINE_TYPES
EOF
$PYTHON benchmarks/results_page.py --out "$OUT" --page docs/results.md
echo "results.sh took $(($(date +%s) - start)) s"
