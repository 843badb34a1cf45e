#!/usr/bin/env bash
# A registered study (`reslearn reproduce --help` lists them) run the way this repository
# runs its long studies: in runs/STUDY with two one-thread processes on two cores, its runs
# kept in docs/STUDY/in-progress/ (committed) between sessions, its seed-1 nets published
# when the study names a zoo name, and its report copied to docs/STUDY/ when it finishes.
#
#   setsid nohup bash benchmarks/studies/study.sh table6 > runs/table6.log 2>&1 &   # start or resume
#   pkill -TERM -f 'reslearn reproduce table6'       # stop: each run writes a checkpoint first
#   bash benchmarks/studies/study.sh table6 --snapshot   # then publish finished nets, keep the runs
#
# Further arguments go to `reslearn reproduce` (--models, --seeds, --data-dir, any train
# flag): the studies measured on the JPEG copy re-run on it with
#   --data-dir "$(python benchmarks/originals.py --jpeg)".
# Without --data-dir the original CIFAR-10 is unpacked into ./data/cifar10 (the default).
# OUT=... and DOCS=... choose other folders than runs/STUDY and docs/STUDY.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/studies/study_queue.sh
study=${1:?usage: study.sh STUDY [--snapshot] [reslearn reproduce flags]}
shift
snapshot=0
if [[ "${1:-}" == "--snapshot" ]]; then snapshot=1 && shift; fi
out=${OUT:-runs/$study} docs=${DOCS:-docs/$study}
kept=$docs/in-progress
mapfile -t runs < <($PY -m reslearn reproduce "$study" --out "$out" --list "$@" | cut -f1)

if ((snapshot)); then
  publish_nets "$study" "$out"
  keep_runs "$out" "$kept" "${runs[@]}"
  exit 0
fi
[[ " $* " == *" --data-dir"* ]] || $PY benchmarks/originals.py >/dev/null
restore_runs "$out" "$kept" "${runs[@]}"  # runs an earlier session kept continue from there
restore_runs "$out" "$docs" "${runs[@]}"  # and the finished ones, from the report
$PY -m reslearn reproduce "$study" --out "$out" --parallel "$WORKERS" "$@"
publish_nets "$study" "$out"
publish_study "$out" "$docs" "${runs[@]}"
forget_kept "$kept" "${runs[@]}"
