#!/usr/bin/env bash
# Regenerates the results page (docs/results.md, benchmarks/results/) from a checkout, with fdivrl's
# own commands. Resumable: run it again after an interruption and finished runs are skipped,
# interrupted ones resumed. The run directories go to $RUNS; their records (config, metrics, eval,
# summary: a few hundred KB) are committed so that every cell traces back to its summary.json and a
# fresh checkout skips what is finished, their checkpoints are not (.gitignore). The tables, JSON
# and figures go to benchmarks/results/.
#
#   bash benchmarks/results.sh            # everything (hours on a 2-core CPU)
#   PART=antmaze bash benchmarks/results.sh   # or PART=hopper, PART=page (tables and page only)
#   TASKS="umaze" PART=antmaze bash benchmarks/results.sh   # a subset of the AntMaze stand-ins
set -euo pipefail
cd "$(dirname "$0")/.."
FDIVRL=${FDIVRL:-.venv/bin/fdivrl}
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-benchmarks/results/runs}
OUT=benchmarks/results
SEEDS=${SEEDS:-3}
PART=${PART:-all}
DEFAULT_TASKS=(umaze umaze-diverse medium-play)
read -r -a TASKS <<< "${TASKS:-${DEFAULT_TASKS[*]}}"
OFFLINE_TYPES=KL,uniform,JS-exact,sigmoid,PER,JS
ONLINE_TYPES=KL,uniform,JS-exact,sigmoid
start=$(date +%s)

if [[ $PART == all || $PART == antmaze ]]; then
  datasets=()
  for task in "${TASKS[@]}"; do
    id="fdivrl/antmaze/$task-v1"
    if ! $FDIVRL data list | grep -q "$id"; then
      $FDIVRL data antmaze "$task" --quiet
    fi
    datasets+=("$id")
  done
  # the quick preset on every task: 100k gradient steps, final evaluation on 50 episodes
  $FDIVRL bench antmaze --datasets "$(IFS=,; echo "${datasets[*]}")" --per-types $OFFLINE_TYPES \
    --seeds "$SEEDS" --preset quick --results "$RUNS/antmaze" --quiet
fi
if [[ $PART == all || $PART == hopper ]]; then
  # online SAC(+ROER) on Hopper-v5, 100k env steps, ROER's score (mean of the last 10 evaluations)
  $FDIVRL bench mujoco --tasks Hopper --per-types $ONLINE_TYPES --seeds "$SEEDS" --preset quick \
    --steps 100000 --results "$RUNS/mujoco" --quiet
fi
# tables, statistics and figures from the runs on disk, then the page
mkdir -p "$OUT"
for part in antmaze mujoco; do
  [[ -f $RUNS/$part/bench-$part-offline.json || -f $RUNS/$part/bench-$part-online.json ]] || continue
  cp "$RUNS/$part"/bench-"$part"-*.{md,csv,json} "$OUT/"
done
if [[ -d $RUNS/antmaze ]]; then
  $FDIVRL compare ${OFFLINE_TYPES//,/ } --results "$RUNS/antmaze" --out "$OUT/compare-antmaze" --json > /dev/null
fi
if [[ -d $RUNS/mujoco ]]; then
  $FDIVRL compare ${ONLINE_TYPES//,/ } --results "$RUNS/mujoco" --out "$OUT/compare-hopper" --json > /dev/null
fi
$PYTHON benchmarks/results_page.py --out "$OUT" --page docs/results.md
echo "results.sh took $(($(date +%s) - start)) s"
