#!/usr/bin/env bash
# Issue 18, point 3: does bf16 autocast train as well as fp32? ResNet-20 on all 50,000
# CIFAR-10 training images for 8 epochs (3,128 iterations; lr 0.1, /10 at epochs 4 and 6),
# channels_last, fp32 and bf16, seeds 1 and 2, test error on the 10,000 test images after
# every epoch. Meaningful only on a CPU (or GPU) with bf16 hardware: on a CPU that emulates
# bf16 a run takes about 10x an fp32 one (docs/performance.md).
#
# Runs live in the ignored runs/bf16-training/<amp>-s<seed>/. Rerun this script to resume:
# finished runs are skipped, an interrupted one continues from its last checkpoint (every
# epoch; SIGTERM writes one of the current iteration). When all four are finished it
# writes the summary with benchmarks/bf16_training_report.py into docs/bf16-training/.
#
# Workers and their queue: benchmarks/study_queue.sh. Background use:
#   setsid nohup bash benchmarks/bf16_training.sh > runs/bf16-training.log 2>&1 &
# Stop with a checkpoint of the current iteration: pkill -TERM -f 'runs/bf16-training/'
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/study_queue.sh
R=${RESLEARN:-.venv/bin/reslearn}
out=runs/bf16-training
queue=(off:1 off:2 bf16:1 bf16:2)  # fp32 first: the slower runs
data=$($PY benchmarks/originals.py)  # the original CIFAR-10 (docs/bf16-training was measured on the JPEG copy)

train_one() {
  $R train --auto-resume --out "$out/$1-s$2" --model resnet20 \
    --data-dir "$data" --epochs 8 --milestones 0.5,0.75 \
    --channels-last on --amp "$1" --seed "$2" --threads 1 --progress log --no-tensorboard
}

run_queue "$out" train_one "${queue[@]}" || exit 0
$PY benchmarks/bf16_training_report.py "$out" docs/bf16-training
