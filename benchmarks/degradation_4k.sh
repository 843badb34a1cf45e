#!/usr/bin/env bash
# Issue 13's 4k study: `reslearn reproduce cifar` (through benchmarks/degradation_short.py)
# with plain20, plain56, resnet20, resnet56 at 4,000 iterations (the recipe scaled: lr /10
# at 2,000 and 3,000), seed 1 for every net, then seed 2 for the ResNets.
#
# The runs live in the ignored runs/degradation-4k/. Rerun this script to resume: finished
# runs are skipped and an interrupted one continues from its last checkpoint (every 400
# iterations). When all six runs are finished it copies the report, figures and metrics
# (not the weights) to docs/degradation-4k/. Background use: one thread, e.g.
#   nohup bash benchmarks/degradation_4k.sh > runs/degradation-4k.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RESLEARN_DATA_ROOT=${RESLEARN_DATA_ROOT:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
out=runs/degradation-4k
run() { $PY benchmarks/degradation_short.py --iterations 4000 --eval-every 400 --out "$out" "$@"; }
run --models plain20,plain56,resnet20,resnet56 --seeds 1
run --models resnet20,resnet56 --seeds 2
mkdir -p docs/degradation-4k
cp "$out"/report.md "$out"/*.png docs/degradation-4k/
for d in "$out"/*-s*/; do
  mkdir -p "docs/degradation-4k/$(basename "$d")"
  cp "$d"/{config.json,metrics.jsonl,final.json,responses.json} "docs/degradation-4k/$(basename "$d")/" 2>/dev/null || true
done
echo "report: docs/degradation-4k/report.md"
