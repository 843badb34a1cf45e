#!/usr/bin/env bash
# Issue 31: Table 6 on the ORIGINAL CIFAR-10 pixels (../shared/data/cifar10, unpacked into
# ./data/cifar10 by its unpack.py, byte for byte the official batches) on the paper's
# schedule: 64,000 iterations of batch 128, lr 0.1, /10 at 32,000 and 48,000, weight decay
# 1e-4, momentum 0.9, all 50,000 training images, the test set evaluated every 2,000
# iterations; bf16 where the CPU's probe measures it faster. resnet110 gets the paper's
# warm-up (lr 0.01 until training error < 80%, the recipe's "auto").
#
# Order (issue 31): resnet56 and resnet20 (seed 1) first, then resnet110, resnet32, resnet44.
# Two one-thread workers take them from one queue (benchmarks/study_queue.sh). The study
# spans sessions (resnet56 is about 11 hours of one core on the fastest machine seen):
#   setsid nohup bash benchmarks/table6.sh > runs/table6.log 2>&1 &   # start or resume
#   pkill -f benchmarks/table6.sh; pkill -TERM -f 'reslearn reproduce'   # stop: the queue first
#                                              # (else a worker takes up the next net), then each
#                                              # run writes a checkpoint of its iteration
#   bash benchmarks/table6.sh --snapshot       # keep the runs in docs/table6/in-progress/
# The next call continues the kept runs. Each net is published as it finishes (NAME-cifar10);
# when all have, the report goes to docs/table6/.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/study_queue.sh
out=runs/table6
kept=docs/table6/in-progress
data=$PWD/data/cifar10
queue=(resnet56:1 resnet20:1 resnet110:1 resnet32:1 resnet44:1)
mkdir -p "$out"

if [[ "${1:-}" == "--snapshot" ]]; then
  keep_runs "$out" "$kept" "${queue[@]}"
  exit 0
fi
[[ -f "$data/cifar-10-batches-py/batches.meta" ]] || $PY "$RESLEARN_DATA_ROOT/cifar10/unpack.py" "$data"
restore_runs "$out" "$kept" "${queue[@]}"  # runs an earlier session kept continue from there
restore_runs "$out" docs/table6 "${queue[@]}"  # and the finished ones, from the report

publish_one() {
  [[ -f "$out/$1-s1/final.json" && -f "$out/$1-s1/last.pt" ]] || return 0
  $PY -c "import sys; from reslearn.published import find; sys.exit(find('$1-cifar10') is None)" && return 0
  $PY benchmarks/publish_net.py "$out/$1-s1" "$1-cifar10" --note "trained on the original CIFAR-10 \
on the paper's schedule (64,000 iterations, lr /10 at 32,000 and 48,000), seed 1: docs/table6" \
    || echo "not published: $1-cifar10"
}

train_one() {
  $PY -m reslearn reproduce cifar --out "$out" --models "$1" --seeds "$2" --iterations 64000 \
    --eval-every 2000 --data-dir "$data"
  publish_one "$1"
}

run_queue "$out" train_one "${queue[@]}" || exit 0
publish_study "$out" docs/table6
rm -rf "$kept"
