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

# A study longer than a session keeps its unfinished runs in the repository, since a later
# session may get another machine (and a fresh runs/):
# A run's checkpoint, config and marker, and its metrics once it has evaluated (a run stopped
# before its first evaluation has none yet).
_copy_run() {
  local f
  for f in last.pt config.json .reslearn-run metrics.jsonl; do
    [[ -f "$1/$f" ]] && cp "$1/$f" "$2/"
  done
  return 0
}

# keep_runs OUT KEPT ITEM...: copies each unfinished run's last checkpoint, config and
#   metrics from OUT to KEPT (committed). Stop the workers first (SIGTERM writes a
#   checkpoint of the current iteration).
keep_runs() {
  local out=$1 kept=$2 item run
  shift 2
  for item in "$@"; do
    run="${item%:*}-s${item#*:}"
    [[ -f "$out/$run/last.pt" && ! -f "$out/$run/final.json" ]] || continue
    mkdir -p "$kept/$run"
    _copy_run "$out/$run" "$kept/$run"
    echo "kept $run at iteration $($PY -c "from reslearn.checkpoint import load_checkpoint as l; print(l('$out/$run').iteration)")"
  done
}

# restore_runs OUT KEPT ITEM...: a run kept in KEPT that OUT does not have continues from there.
restore_runs() {
  local out=$1 kept=$2 item run
  shift 2
  for item in "$@"; do
    run="${item%:*}-s${item#*:}"
    if [[ -f "$kept/$run/last.pt" && ! -f "$out/$run/last.pt" ]]; then
      mkdir -p "$out/$run"
      _copy_run "$kept/$run" "$out/$run"
      echo "restored $run from $kept"
    fi
  done
}

# restore_finished OUT DOCS ITEM...: a study grown by more runs (a further seed) on a fresh
#   runs/: each run DOCS already reports as finished (publish_study's copy: config, metrics,
#   final.json, responses; no weights) comes back to OUT, so the queue skips it and the report
#   is rebuilt over all the runs. A run OUT has is left alone.
restore_finished() {
  local out=$1 docs=$2 item run f
  shift 2
  for item in "$@"; do
    run="${item%:*}-s${item#*:}"
    [[ -f "$docs/$run/final.json" && ! -e "$out/$run" ]] || continue
    mkdir -p "$out/$run"
    for f in config.json metrics.jsonl final.json responses.json; do
      [[ -f "$docs/$run/$f" ]] && cp "$docs/$run/$f" "$out/$run/"
    done
    echo "finished $run taken from $docs"
  done
  return 0
}
