# Sourced by the study scripts (degradation_4k.sh, degradation_16k.sh, table6_64k.sh,
# bf16_training.sh).
#
# run_queue OUT FN ITEM...: WORKERS processes (default: the cores, at most 2; one thread
# each: on 2 cores two one-thread workers did 340 img/s in all against 265 for one 2-thread
# job) take ITEMs (NAME:SEED, longest first) from one queue. A run is claimed with flock on
# OUT/.lock-NAME-sSEED, so two copies of a script never train the same run and a killed
# worker frees its run; `FN NAME SEED` trains (or resumes) OUT/NAME-sSEED; a run with
# final.json is finished; one call takes each run up once. Returns 1 when some run is not
# finished yet.

cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # GNU nproc reports OMP_NUM_THREADS
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RESLEARN_DATA_ROOT=${RESLEARN_DATA_ROOT:-../shared/data}
WORKERS=${WORKERS:-$((cores < 2 ? cores : 2))}
PY=${PYTHON:-.venv/bin/python}

run_queue() {
  local out=$1 fn=$2 item w
  shift 2
  local items=("$@") pids=() tried
  mkdir -p "$out"
  tried=$(mktemp -d "$out/.tried.XXXXXX")  # the runs this call has taken up: one that stops unfinished (an error,
  # a signal) is not taken up again by the next worker; the next call retries it
  _worker() {
    local item name seed
    for item in "${items[@]}"; do
      name=${item%:*} seed=${item#*:}
      [[ -f "$out/$name-s$seed/final.json" ]] && continue
      (
        flock -n 9 || exit 0
        [[ -e "$tried/$name-s$seed" ]] && exit 0
        touch "$tried/$name-s$seed"
        echo "[worker $1] $name seed $seed"
        "$fn" "$name" "$seed"
      ) 9>"$out/.lock-$name-s$seed"
    done
  }
  for w in $(seq 1 "$WORKERS"); do
    _worker "$w" &
    pids+=($!)
    sleep 2
  done
  wait "${pids[@]}"
  rm -rf "$tried"
  for item in "${items[@]}"; do
    if [[ ! -f "$out/${item%:*}-s${item#*:}/final.json" ]]; then
      echo "not finished yet: $item (another copy may be training it); rerun to resume"
      return 1
    fi
  done
}

# publish_study OUT DOCS: the report of the runs in OUT (`reslearn report`), copied with its
# figures and every run's config, metrics, result and responses (never the weights) to DOCS.
publish_study() {
  local out=$1 docs=$2 d
  $PY -m reslearn report "$out"
  mkdir -p "$docs"
  cp "$out"/report.md "$out"/*.png "$docs/"
  for d in "$out"/*-s*/; do
    mkdir -p "$docs/$(basename "$d")"
    cp "$d"/{config.json,metrics.jsonl,final.json,responses.json} "$docs/$(basename "$d")/" 2>/dev/null || true
  done
  echo "report: $docs/report.md"
}

# A study longer than a session keeps its runs in the repository, since a later session may
# get another machine (and a fresh runs/): an unfinished run with its checkpoint, config,
# marker and metrics (once it has evaluated); a finished one with what its report needs
# (config, metrics, final.json, responses; no weights), so it is never trained again.
# Nets a study publishes are published when their run finishes, from the weights there.
UNFINISHED_FILES=(last.pt config.json .reslearn-run metrics.jsonl)
FINISHED_FILES=(config.json metrics.jsonl final.json responses.json)

_copy_files() {  # SRC DST FILE...: those of FILEs SRC has (with NO_CLOBBER=1, none DST has)
  local src=$1 dst=$2 f
  shift 2
  for f in "$@"; do
    [[ -f "$src/$f" ]] || continue
    [[ "${NO_CLOBBER:-0}" == 1 && -e "$dst/$f" ]] && continue
    cp "$src/$f" "$dst/"
  done
  return 0
}

# keep_runs OUT KEPT ITEM...: copies each run OUT has from OUT to KEPT (committed), as
#   above; a run that has finished since it was kept loses its kept checkpoint. Stop the
#   workers first (SIGTERM writes a checkpoint of the current iteration). With them,
#   KEPT/report.md: `reslearn report` of the kept runs so far (their curves and the
#   depth-over-training table; an unfinished run has no final error).
keep_runs() {
  local out=$1 kept=$2 item run n=0
  shift 2
  for item in "$@"; do
    run="${item%:*}-s${item#*:}"
    if [[ -f "$out/$run/final.json" ]]; then
      mkdir -p "$kept/$run"
      rm -f "$kept/$run/last.pt" "$kept/$run/.reslearn-run"
      _copy_files "$out/$run" "$kept/$run" "${FINISHED_FILES[@]}"
      echo "kept $run (finished: its report's files, no weights)"
    elif [[ -f "$out/$run/last.pt" ]]; then
      mkdir -p "$kept/$run"
      _copy_files "$out/$run" "$kept/$run" "${UNFINISHED_FILES[@]}"
      echo "kept $run at iteration $($PY -c "from reslearn.checkpoint import load_checkpoint as l; print(l('$out/$run').iteration)")"
    else
      continue
    fi
    n=$((n + 1))
  done
  if ((n > 0)); then
    if $PY -m reslearn report "$kept" >/dev/null; then echo "interim report: $kept/report.md"; else echo "no interim report"; fi
  fi
}

# restore_runs OUT FROM ITEM...: a run OUT has neither a checkpoint nor a final.json of comes
#   back from FROM: unfinished, to continue from its checkpoint; finished (where OUT has no
#   folder of it at all), so the queue skips it and the report covers it. FROM is what
#   keep_runs kept, or a published report's folder (publish_study's copy), for a study grown
#   by further runs (a new seed) on a fresh runs/. No file OUT has is replaced.
restore_runs() {
  local out=$1 from=$2 item run
  shift 2
  for item in "$@"; do
    run="${item%:*}-s${item#*:}"
    [[ -e "$out/$run/last.pt" || -f "$out/$run/final.json" ]] && continue
    if [[ -f "$from/$run/final.json" ]]; then
      [[ -e "$out/$run" ]] && continue  # a run begun here is trained here, not mixed with a copy
      mkdir -p "$out/$run"
      NO_CLOBBER=1 _copy_files "$from/$run" "$out/$run" "${FINISHED_FILES[@]}"
      echo "restored $run from $from (finished)"
    elif [[ -f "$from/$run/last.pt" ]]; then
      mkdir -p "$out/$run"
      NO_CLOBBER=1 _copy_files "$from/$run" "$out/$run" "${UNFINISHED_FILES[@]}"
      echo "restored $run from $from"
    fi
  done
  return 0
}
