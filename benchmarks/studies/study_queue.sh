# Sourced by benchmarks/studies/study.sh: how a study longer than a session lives in the
# repository. `reslearn reproduce` itself trains, resumes and shares the runs among its
# processes (--parallel); these keep and restore the runs across sessions, since a later
# session may get another machine and a fresh runs/.
#
# An unfinished run is kept with its checkpoint, config, marker and metrics (once it has
# evaluated); a finished one with what its report needs (config, metrics, final.json,
# responses; no weights), so it is never trained again. Runs are named by their folders
# (`reslearn reproduce STUDY --out OUT --list`).

cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # GNU nproc reports OMP_NUM_THREADS
# One thread a run, two runs at a time on 2 cores: 340 img/s in all against 265 for one
# 2-thread run (issue 13, machine (A)).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} RESLEARN_DATA_ROOT=${RESLEARN_DATA_ROOT:-../shared/data}
WORKERS=${WORKERS:-$((cores < 2 ? cores : 2))}
PY=${PYTHON:-.venv/bin/python}
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

# keep_runs OUT KEPT RUN...: copies each RUN OUT has to KEPT (committed), as above; a run
#   that has finished since it was kept loses its kept checkpoint. Stop the study first
#   (SIGTERM: each run writes a checkpoint of its iteration). With them, KEPT/report.md:
#   `reslearn report` of the kept runs so far (an unfinished run has no final error).
keep_runs() {
  local out=$1 kept=$2 run n=0
  shift 2
  for run in "$@"; do
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

# restore_runs OUT FROM RUN...: a RUN OUT has neither a checkpoint nor a final.json of comes
#   back from FROM: unfinished, to continue from its checkpoint; finished (where OUT has no
#   folder of it at all), so reproduce skips it and the report covers it. FROM is what
#   keep_runs kept, or a published report's folder (publish_study's copy), for a study grown
#   by further runs (a new seed) on a fresh runs/. No file OUT has is replaced.
restore_runs() {
  local out=$1 from=$2 run
  shift 2
  for run in "$@"; do
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

# forget_kept KEPT RUN...: the kept copies of RUNs (finished now, their report published)
#   go; KEPT itself, with its interim report, only when no other run is kept there: a
#   study run in parts (`--arms paper,bn64`, `--seeds 2`) keeps the checkpoints of the
#   other parts for later sessions.
forget_kept() {
  local kept=$1 run
  shift
  for run in "$@"; do rm -rf "${kept:?}/$run"; done
  compgen -G "$kept/*/" >/dev/null || rm -rf "$kept"
  return 0
}

# publish_study OUT DOCS RUN...: the report of the runs in OUT (`reslearn report`), copied
#   with its figures and each RUN's config, metrics, result and responses (never the
#   weights) to DOCS.
publish_study() {
  local out=$1 docs=$2 run
  shift 2
  $PY -m reslearn report "$out"
  mkdir -p "$docs"
  cp "$out"/report.md "$out"/*.png "$docs/"
  for run in "$@"; do
    mkdir -p "$docs/$run"
    NO_CLOBBER=0 _copy_files "$out/$run" "$docs/$run" "${FINISHED_FILES[@]}"
  done
  echo "report: $docs/report.md"
}

# publish_nets STUDY OUT: each finished seed-1 net of a study that names a zoo name
#   (reslearn.reproduce.study.Study.publish), not yet in the zoo, is published from its
#   weights (benchmarks/studies/publish_net.py: exported, its test error measured, listed).
#   Called as each session ends, since a later session keeps no weights.
publish_nets() {
  local study=$1 out=$2 tmpl d model name
  tmpl=$($PY -c "from reslearn.reproduce import get_study; print(get_study('$study').publish or '')")
  [[ -n "$tmpl" ]] || return 0
  for d in "$out"/*-s1; do
    [[ -f "$d/final.json" && -f "$d/last.pt" ]] || continue
    model=$(basename "$d")
    model=${model%-s1}
    name=${tmpl//\{model\}/$model}
    $PY -c "import sys; from reslearn.published import find; sys.exit(find('$name') is None)" && continue
    $PY benchmarks/studies/publish_net.py "$d" "$name" \
      --note "trained by \`reslearn reproduce $study\`, seed 1: docs/$study" || echo "not published: $name"
  done
  return 0
}
