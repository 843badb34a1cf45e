#!/usr/bin/env bash
# Issue 13's 4k study: `reslearn reproduce cifar` (through benchmarks/degradation_short.py)
# with plain20, plain56, resnet20, resnet56 at 4,000 iterations (the recipe scaled: lr /10
# at 2,000 and 3,000), seed 1 for every net and seed 2 for the ResNets.
#
# The runs live in the ignored runs/degradation-4k/. Rerun this script to resume: finished
# runs are skipped and an interrupted one continues from its last checkpoint (every 400
# iterations; SIGTERM writes one of the current iteration first). When all six runs are
# finished it rebuilds the report and copies it with the figures and metrics (not the
# weights) to docs/degradation-4k/.
#
# WORKERS (default: the number of cores, at most 2) processes of one thread each take runs
# from one queue, longest first; a run is claimed with flock on runs/degradation-4k/.lock-RUN,
# so two copies of this script never train the same run and a killed worker frees its run.
# On this 2-core CPU one-thread workers give 340 img/s in all against 265 for one 2-thread
# job (ResNet-20). Background use:
#   setsid nohup bash benchmarks/degradation_4k.sh > runs/degradation-4k.log 2>&1 &
# and to stop it with a checkpoint of the current iteration: pkill -TERM -f degradation_short.py
set -euo pipefail
cd "$(dirname "$0")/.."
# Cores first: GNU nproc reports OMP_NUM_THREADS when it is set.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RESLEARN_DATA_ROOT=${RESLEARN_DATA_ROOT:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
out=runs/degradation-4k
WORKERS=${WORKERS:-$((cores < 2 ? cores : 2))}
# Longest first (the 56-layer nets take about 3x the 20-layer ones' time).
queue=(plain56:1 resnet56:1 resnet56:2 plain20:1 resnet20:1 resnet20:2)
mkdir -p "$out"

worker() {
  local item model seed
  for item in "${queue[@]}"; do
    model=${item%:*} seed=${item#*:}
    [[ -f "$out/$model-s$seed/final.json" ]] && continue
    (
      flock -n 9 || exit 0
      echo "[worker $1] $model seed $seed"
      $PY benchmarks/degradation_short.py --iterations 4000 --eval-every 400 --out "$out" \
        --models "$model" --seeds "$seed"
    ) 9>"$out/.lock-$model-s$seed"
  done
}

pids=()
for w in $(seq 1 "$WORKERS"); do
  worker "$w" &
  pids+=($!)
  sleep 2
done
wait "${pids[@]}"

for item in "${queue[@]}"; do
  model=${item%:*} seed=${item#*:}
  if [[ ! -f "$out/$model-s$seed/final.json" ]]; then
    echo "not finished yet: $model-s$seed (another copy of this script may be training it); rerun to resume"
    exit 0
  fi
done
$PY -m reslearn report "$out"
mkdir -p docs/degradation-4k
cp "$out"/report.md "$out"/*.png docs/degradation-4k/
for d in "$out"/*-s*/; do
  mkdir -p "docs/degradation-4k/$(basename "$d")"
  cp "$d"/{config.json,metrics.jsonl,final.json,responses.json} "docs/degradation-4k/$(basename "$d")/" 2>/dev/null || true
done
echo "report: docs/degradation-4k/report.md"
