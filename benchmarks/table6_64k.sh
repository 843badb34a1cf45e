#!/usr/bin/env bash
# Measured on the shared JPEG copy of CIFAR-10 (--jpeg below): kept to re-check those results.
# The originals' studies: benchmarks/table6.sh.
# Issue 22's Table 6 rows: resnet20 and resnet56, seed 1, on the paper's own CIFAR-10
# schedule (64,000 iterations of batch 128, lr 0.1, /10 at 32,000 and 48,000, all 50,000
# training images; the test set evaluated every 2,000 iterations), through
# `reslearn reproduce cifar` (benchmarks/degradation_short.py). Precision: the engine
# default (bf16 where the CPU's probe measures it faster, fp32 elsewhere).
#
# Cost on 2 cores, one thread a run, two runs at a time: resnet20 about 5.5 hours, resnet56
# about 11 (machine (I), bf16: 420 and 210 img/s a run in the 16k study); several times that
# without bf16 hardware. A lent GPU does resnet56's 64k in
# minutes (benchmarks/gpu_check.sh). So this study spans sessions, like the 16k one:
#   setsid nohup bash benchmarks/table6_64k.sh > runs/table6-64k.log 2>&1 &   # start or resume
#   pkill -TERM -f degradation_short.py       # stop: each run writes a checkpoint first
#   bash benchmarks/table6_64k.sh --snapshot  # then keep the runs in
#                                             # docs/table6-64k/in-progress/ (committed)
# The next call continues the kept runs. Each net is published as it finishes (resnet20-cifar10,
# resnet56-cifar10: benchmarks/publish_net.py); when both have, the report (with the figures and
# each run's metrics, not the weights) goes to docs/table6-64k/.
#
# More seeds put a seed range on the rows: SEEDS="1 2 3" bash benchmarks/table6_64k.sh (the
# default is seed 1, the published nets'). The finished seed-1 runs come back from
# docs/table6-64k on a fresh runs/, so only the new runs train, and the report is rebuilt
# over all of them; each resnet56 seed is about 11 hours of one core on machine (I).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/study_queue.sh
out=runs/table6-64k
kept=docs/table6-64k/in-progress
read -ra seeds <<<"${SEEDS:-1}"
queue=()
for s in "${seeds[@]}"; do
  [[ "$s" =~ ^[1-9][0-9]*$ ]] || { echo "SEEDS must be positive integers, e.g. SEEDS=\"1 2 3\"; got '$s'" >&2; exit 2; }
  queue+=("resnet56:$s")
done
for s in "${seeds[@]}"; do queue+=("resnet20:$s"); done  # longest first
mkdir -p "$out"

if [[ "${1:-}" == "--snapshot" ]]; then
  keep_runs "$out" "$kept" "${queue[@]}"
  exit 0
fi
restore_runs "$out" "$kept" "${queue[@]}"  # runs an earlier session kept continue from there
restore_runs "$out" docs/table6-64k "${queue[@]}"  # and the finished ones, from the report

# Issue 22 item 3: a finished net joins the model zoo (src/reslearn/weights, committed) as
# NAME-cifar10, its test error measured by `reslearn eval`, as soon as its run finishes: a
# later session keeps only the run's report files (benchmarks/study_queue.sh), not its
# weights. An already published name is left alone.
publish_one() {
  [[ -f "$out/$1-s1/final.json" && -f "$out/$1-s1/last.pt" ]] || return 0
  $PY -c "import sys; from reslearn.published import find; sys.exit(find('$1-cifar10') is None)" && return 0
  $PY benchmarks/publish_net.py "$out/$1-s1" "$1-cifar10" --note "trained on the CIFAR-10 \
JPEG q75 copy (not the original pixels) on the paper's schedule (64,000 iterations, lr /10 at \
32,000 and 48,000), seed 1: docs/table6-64k" || echo "not published: $1-cifar10"
}

train_one() {
  $PY benchmarks/degradation_short.py --jpeg --iterations 64000 --eval-every 2000 --out "$out" --models "$1" --seeds "$2"
  publish_one "$1"
}

for net in resnet56 resnet20; do publish_one "$net"; done  # a run that finished before this code
run_queue "$out" train_one "${queue[@]}" || exit 0
publish_study "$out" docs/table6-64k
rm -rf "$kept"
