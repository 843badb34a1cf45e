"""benchmarks/study_queue.sh: what carries a study of many hours across sessions (issue 22).
The queue must train each run once and say what is unfinished; the unfinished runs kept in
the repository must come back in a fresh runs/ and continue there."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reslearn.checkpoint import load_checkpoint
from reslearn.train import train

from .helpers import train_cfg

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("flock") is None, reason="needs bash, flock"
)


def study(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in bash with study_queue.sh sourced (this Python for its $PY)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "WORKERS": "2"}
    src = f"source {ROOT / 'benchmarks' / 'study_queue.sh'}\n{script}"
    return subprocess.run(["bash", "-c", src], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_queue_trains_each_run_once_and_names_the_unfinished(tmp_path):
    # fn: logs each call; run b never finishes (no final.json), a and c do
    fn = (
        'fn() { echo "$1 $2" >> calls; [[ $1 == b ]] && return 0; '
        'mkdir -p "out/$1-s$2" && touch "out/$1-s$2/final.json"; }'
    )
    r = study(f'{fn}\nrun_queue out fn a:1 b:1 c:2; echo "rc=$?"', tmp_path)
    assert "rc=1" in r.stdout and "not finished yet: b:1" in r.stdout, r.stdout + r.stderr
    assert sorted((tmp_path / "calls").read_text().split("\n")[:-1]) == ["a 1", "b 1", "c 2"]
    # again: the finished runs are left alone, the unfinished one is taken up
    (tmp_path / "calls").unlink()
    r = study(f'{fn}\nrun_queue out fn a:1 b:1 c:2; echo "rc=$?"', tmp_path)
    assert "rc=1" in r.stdout and (tmp_path / "calls").read_text() == "b 1\n", r.stdout + r.stderr


def test_kept_runs_come_back_in_a_fresh_runs_dir_the_unfinished_continues_the_finished_is_not_retrained(
    tiny_data, tmp_path
):
    out, kept = tmp_path / "runs", tmp_path / "kept"
    run = train(train_cfg(tiny_data, out / "cifar_resnet8-s1", iterations=12), stop_after=6)
    done = train(train_cfg(tiny_data, out / "cifar_resnet8-s2", iterations=6))
    assert (done / "final.json").is_file()  # what marks a finished run
    (kept / "cifar_resnet8-s2").mkdir(parents=True)
    (kept / "cifar_resnet8-s2" / "last.pt").write_bytes(b"stale")  # kept while it was unfinished
    r = study("keep_runs runs kept cifar_resnet8:1 cifar_resnet8:2 absent:1", tmp_path)
    assert "kept cifar_resnet8-s1 at iteration 6" in r.stdout, r.stdout + r.stderr
    assert "kept cifar_resnet8-s2 (finished" in r.stdout and "interim report" in r.stdout, r.stdout
    assert {p.name for p in (kept / "cifar_resnet8-s1").iterdir()} == {
        "last.pt",
        "config.json",
        ".reslearn-run",
        "metrics.jsonl",
    }
    # finished: what its report needs, no weights (the stale checkpoint is gone)
    assert {p.name for p in (kept / "cifar_resnet8-s2").iterdir()} == {
        "config.json",
        "metrics.jsonl",
        "final.json",
    }
    assert "cifar_resnet8" in (kept / "report.md").read_text() and not (kept / "absent-s1").exists()
    # a later session: a fresh runs/ gets both back; the unfinished one trains on from 6
    shutil.rmtree(out)
    r = study("restore_runs runs kept cifar_resnet8:1 cifar_resnet8:2", tmp_path)
    assert "restored cifar_resnet8-s1 from kept" in r.stdout, r.stdout + r.stderr
    assert "restored cifar_resnet8-s2 from kept (finished)" in r.stdout, r.stdout
    assert load_checkpoint(run).iteration == 6
    train(resume=run)
    assert load_checkpoint(run).iteration == 12
    # ...and the queue trains neither again once s1 has finished
    assert (run / "final.json").is_file()
    r = study(
        'fn() { echo "$1 $2" >> calls; }\nrun_queue runs fn cifar_resnet8:1 cifar_resnet8:2; echo "rc=$?"',
        tmp_path,
    )
    assert "rc=0" in r.stdout and not (tmp_path / "calls").exists(), r.stdout + r.stderr
    # what runs/ holds is never replaced by the kept copy
    (run / "final.json").unlink()
    before = (run / "last.pt").read_bytes()
    study("restore_runs runs kept cifar_resnet8:1", tmp_path)
    assert (run / "last.pt").read_bytes() == before


def test_a_grown_study_takes_its_finished_runs_from_the_report_and_trains_only_the_new(tmp_path):
    docs = tmp_path / "docs"
    for run in ("a-s1", "a-s2"):  # the published report's copies: no weights
        (docs / run).mkdir(parents=True)
        for f in ("config.json", "metrics.jsonl", "final.json", "responses.json"):
            (docs / run / f).write_text(f"{run} {f}")
    (tmp_path / "out" / "a-s2").mkdir(parents=True)  # what runs/ has is never replaced
    (tmp_path / "out" / "a-s2" / "config.json").write_text("mine")
    fn = 'fn() { echo "$1 $2" >> calls; mkdir -p "out/$1-s$2" && touch "out/$1-s$2/final.json"; }'
    r = study(
        f'{fn}\nrestore_runs out docs a:1 a:2 a:3\nrun_queue out fn a:1 a:2 a:3; echo "rc=$?"', tmp_path
    )
    assert "restored a-s1 from docs (finished)" in r.stdout and "rc=0" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "out" / "a-s1" / "metrics.jsonl").read_text() == "a-s1 metrics.jsonl"
    assert (tmp_path / "out" / "a-s2" / "config.json").read_text() == "mine"
    assert not (tmp_path / "out" / "a-s2" / "metrics.jsonl").exists()
    # a-s1 came back finished and is not trained again; a-s2, begun here, and a-s3, new, are
    assert sorted((tmp_path / "calls").read_text().splitlines()) == ["a 2", "a 3"]
