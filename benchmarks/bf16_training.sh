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
# WORKERS (default: the cores, at most 2) one-thread processes take runs from one queue;
# a run is claimed with flock, so two copies of this script never train the same run.
#   setsid nohup bash benchmarks/bf16_training.sh > runs/bf16-training.log 2>&1 &
# Stop with a checkpoint of the current iteration: pkill -TERM -f 'runs/bf16-training/'
set -euo pipefail
cd "$(dirname "$0")/.."
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # GNU nproc reports OMP_NUM_THREADS
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RESLEARN_DATA_ROOT=${RESLEARN_DATA_ROOT:-../shared/data}
R=${RESLEARN:-.venv/bin/reslearn}
PY=${PYTHON:-.venv/bin/python}
out=runs/bf16-training
WORKERS=${WORKERS:-$((cores < 2 ? cores : 2))}
queue=(off:1 off:2 bf16:1 bf16:2)  # fp32 first: the slower runs
mkdir -p "$out"

worker() {
  local item amp seed rd
  for item in "${queue[@]}"; do
    amp=${item%:*} seed=${item#*:}
    rd="$out/$amp-s$seed"
    [[ -f "$rd/final.json" ]] && continue
    (
      flock -n 9 || exit 0
      echo "[worker $1] amp=$amp seed $seed"
      $R train --auto-resume --out "$rd" --model resnet20 \
        --data-dir "$RESLEARN_DATA_ROOT/cifar10-jpeg" --epochs 8 --milestones 0.5,0.75 \
        --channels-last on --amp "$amp" --seed "$seed" --threads 1 --progress log --no-tensorboard
    ) 9>"$out/.lock-$amp-s$seed"
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
  [[ -f "$out/${item%:*}-s${item#*:}/final.json" ]] || { echo "not finished yet: $item; rerun to resume"; exit 0; }
done
$PY benchmarks/bf16_training_report.py "$out" docs/bf16-training
