#!/usr/bin/env bash
# Measured on the shared JPEG copy of CIFAR-10 (--jpeg below): kept to re-check those results.
# The originals' studies: benchmarks/table6.sh.
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
# Workers and their queue: benchmarks/study_queue.sh. Background use:
#   setsid nohup bash benchmarks/degradation_4k.sh > runs/degradation-4k.log 2>&1 &
# and to stop it with a checkpoint of the current iteration: pkill -TERM -f degradation_short.py
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/study_queue.sh
out=runs/degradation-4k
# Longest first (the 56-layer nets take about 3x the 20-layer ones' time).
queue=(plain56:1 resnet56:1 resnet56:2 plain20:1 resnet20:1 resnet20:2)

train_one() {
  $PY benchmarks/degradation_short.py --jpeg --iterations 4000 --eval-every 400 --out "$out" --models "$1" --seeds "$2"
}

run_queue "$out" train_one "${queue[@]}" || exit 0
publish_study "$out" docs/degradation-4k
