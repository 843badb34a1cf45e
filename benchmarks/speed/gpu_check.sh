#!/usr/bin/env bash
# GPU check for issue 4, run in ONE call of the device tool (H100), under 9 minutes:
#   (a) `reslearn bench` for resnet20, resnet56, resnet110, resnet18, resnet50 (CUDA);
#   (b) resnet56 with the paper's full schedule (64k iterations) on the CIFAR-10 JPEG copy,
#       printing wall time and test error;
#   (c) issue 13's first-epoch study: resnet56, one epoch at lr 0.1, seeds 1-4, fp32 and
#       bf16 (this CPU has no bf16 hardware: 12x slower there).
#
# Here (no GPU needed):   bash benchmarks/speed/gpu_check.sh --prepare
#   packs ../shared/data/cifar10-jpeg into .gpu_data/cifar10-jpeg.tar.gz (about 20 MB;
#   .gpu_data/ is git-ignored, so it travels only when carried). The JPEG copy, not the
#   original CIFAR-10: the originals pack to ~100 MB (lossless), over the device tool's 64 MiB
#   carry; this check measures speed and that the schedule trains, not a number for Table 6.
# Device call:            command "bash benchmarks/speed/gpu_check.sh", carry [".gpu_data"],
#                         timeout_s 560. Results land in $OUT (bench.json, metrics, log).
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--prepare" ]; then
  src="${RESLEARN_DATA_ROOT:-../shared/data}/cifar10-jpeg"
  mkdir -p .gpu_data
  tar -C "$src" -czf .gpu_data/cifar10-jpeg.tar.gz train test
  ls -l .gpu_data/cifar10-jpeg.tar.gz
  exit 0
fi

OUT="${OUT:-/tmp/gpu_check_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RESLEARN_CACHE_DIR=/tmp/reslearn-cache
PY=${PYTHON:-python3}
log="$OUT/gpu_check.log"
exec > >(tee "$log") 2>&1

echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
if [ ! -f .gpu_data/cifar10-jpeg.tar.gz ]; then
  echo "missing .gpu_data/cifar10-jpeg.tar.gz: run 'bash benchmarks/speed/gpu_check.sh --prepare' here and carry .gpu_data"
  exit 2
fi
data=/tmp/cifar10-jpeg
mkdir -p "$data" && tar -C "$data" -xzf .gpu_data/cifar10-jpeg.tar.gz

echo "== (a) bench, all five models"
timeout 120 $PY -m reslearn.cli bench --device cuda --seconds 1 --json "$OUT/bench.json" || echo "bench failed or timed out (rc=$?)"

echo "== (c) first epoch of resnet56, fp32 and bf16, seeds 1-4"
timeout 110 $PY benchmarks/speed/first_epoch.py --device cuda --out /tmp/first-epoch \
  --report "$OUT/first_epoch_report.md" || echo "first epoch failed or timed out (rc=$?)"

echo "== (b) resnet56, full paper schedule (64k iterations), compiled (CUDA graphs)"
t0=$(date +%s)
timeout 300 $PY -m reslearn.cli train --model resnet56 --data-dir "$data" --no-download \
  --iterations 64000 --device cuda --compile --eval-every 4000 --progress log \
  --out /tmp/run-resnet56 || echo "train failed or timed out (rc=$?)"
t1=$(date +%s)
cp /tmp/run-resnet56/metrics.jsonl "$OUT/resnet56_metrics.jsonl" 2>/dev/null
cp /tmp/run-resnet56/final.json "$OUT/resnet56_final.json" 2>/dev/null
echo "resnet56 64k iterations: wall $((t1 - t0)) s (including data decode and compilation)"
cat /tmp/run-resnet56/final.json 2>/dev/null
