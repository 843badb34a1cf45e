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


def test_an_unfinished_run_is_kept_restored_and_continues(tiny_data, tmp_path):
    out, kept = tmp_path / "runs", tmp_path / "kept"
    run = train(train_cfg(tiny_data, out / "cifar_resnet8-s1", iterations=12), stop_after=6)
    (out / "other-s1").mkdir()  # finished: not kept
    (out / "other-s1" / "last.pt").write_bytes(b"")
    (out / "other-s1" / "final.json").write_text("{}")
    r = study("keep_runs runs kept cifar_resnet8:1 other:1", tmp_path)
    assert "kept cifar_resnet8-s1 at iteration 6" in r.stdout, r.stdout + r.stderr
    assert not (kept / "other-s1").exists()
    assert {p.name for p in (kept / "cifar_resnet8-s1").iterdir()} == {
        "last.pt",
        "config.json",
        ".reslearn-run",
        "metrics.jsonl",
    }
    # a later session: a fresh runs/ gets the kept run back, and it trains on from iteration 6
    shutil.rmtree(out)
    r = study("restore_runs runs kept cifar_resnet8:1 other:1", tmp_path)
    assert "restored cifar_resnet8-s1" in r.stdout and not (out / "other-s1").exists(), r.stdout
    assert load_checkpoint(run).iteration == 6
    train(resume=run)
    assert load_checkpoint(run).iteration == 12
    # what runs/ holds is never replaced by the kept copy
    before = (run / "last.pt").read_bytes()
    study("restore_runs runs kept cifar_resnet8:1", tmp_path)
    assert (run / "last.pt").read_bytes() == before


def test_a_grown_study_takes_its_finished_runs_from_docs_and_trains_only_the_new(tmp_path):
    docs = tmp_path / "docs"
    for run in ("a-s1", "a-s2"):  # the published report's copies: no weights
        (docs / run).mkdir(parents=True)
        for f in ("config.json", "metrics.jsonl", "final.json", "responses.json"):
            (docs / run / f).write_text(f"{run} {f}")
    (tmp_path / "out" / "a-s2").mkdir(parents=True)  # what runs/ has is never replaced
    fn = 'fn() { echo "$1 $2" >> calls; mkdir -p "out/$1-s$2" && touch "out/$1-s$2/final.json"; }'
    r = study(
        f'{fn}\nrestore_finished out docs a:1 a:2 a:3\nrun_queue out fn a:1 a:2 a:3; echo "rc=$?"', tmp_path
    )
    assert "finished a-s1 taken from docs" in r.stdout and "a-s2 taken" not in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "out" / "a-s1" / "metrics.jsonl").read_text() == "a-s1 metrics.jsonl"
    assert not (tmp_path / "out" / "a-s2" / "metrics.jsonl").exists()
    # a-s2 here has no final.json (unfinished): trained; a-s1 came back finished; a-s3 is new
    assert sorted((tmp_path / "calls").read_text().splitlines()) == ["a 2", "a 3"] and "rc=0" in r.stdout
