#!/usr/bin/env bash
# Measured on the shared JPEG copy of CIFAR-10 (--jpeg below): kept to re-check those results.
# The originals' studies: benchmarks/table6.sh.
# Issue 22's 16k study: `reslearn reproduce cifar` (through benchmarks/degradation_short.py)
# with resnet20 and resnet56, seeds 1 and 2 (and 3: below), at 16,000 iterations (a quarter
# of the paper's schedule: lr 0.1, /10 at 8,000 and 12,000, batch 128, all 50,000 training images, the
# test set evaluated every 1,000 iterations). Precision: the engine default (`--amp auto`:
# bf16 where the CPU's probe measures it faster, fp32 elsewhere; issue 18 showed bf16 trains
# as well as fp32, docs/bf16-training/).
#
# The runs live in the ignored runs/degradation-16k/. Rerun this script to resume: finished
# runs are skipped, an interrupted one continues from its last checkpoint (every 1,000
# iterations; SIGTERM writes one of the current iteration first). The study takes more
# than one session (about 8 core-hours with bf16 hardware, several times that without), and
# a later session may get another machine, so:
#   bash benchmarks/degradation_16k.sh --snapshot   # after stopping the workers: keeps each
#        run in docs/degradation-16k/in-progress/ (committed; benchmarks/study_queue.sh says
#        what), where the next session's first call of this script picks them up.
# When all the runs are finished it rebuilds the report and copies it with the figures and
# every run's metrics (not the weights) to docs/degradation-16k/.
#
# A third seed of each net joined the queue after the two-seed report (docs/degradation-16k,
# 2026-11-30): resnet56's seed range there (1.43 points) was 7x resnet20's and held the
# verdict inside the noise. The finished seeds come back from docs/ on a fresh runs/
# (restore_runs from there), so only the new runs train, and the report is rebuilt over all six.
#
# Background use (workers and their queue: benchmarks/study_queue.sh):
#   setsid nohup bash benchmarks/degradation_16k.sh > runs/degradation-16k.log 2>&1 &
# Stop with a checkpoint of the current iteration: pkill -TERM -f 'degradation_short.py'
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/study_queue.sh
out=runs/degradation-16k
kept=docs/degradation-16k/in-progress
queue=(resnet56:1 resnet56:2 resnet56:3 resnet20:1 resnet20:2 resnet20:3)  # longest first
mkdir -p "$out"

if [[ "${1:-}" == "--snapshot" ]]; then
  keep_runs "$out" "$kept" "${queue[@]}"
  exit 0
fi
restore_runs "$out" "$kept" "${queue[@]}"  # runs an earlier session kept continue from there
restore_runs "$out" docs/degradation-16k "${queue[@]}"  # and the finished seeds, from the report

train_one() {
  $PY benchmarks/degradation_short.py --jpeg --iterations 16000 --eval-every 1000 --out "$out" --models "$1" --seeds "$2"
}

run_queue "$out" train_one "${queue[@]}" || exit 0
publish_study "$out" docs/degradation-16k
rm -rf "$kept"
