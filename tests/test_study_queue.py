"""benchmarks/studies/study_queue.sh: what carries a study of many hours across sessions (issue 22).
The unfinished runs kept in the repository must come back in a fresh runs/ and continue
there; the finished ones come back as finished (`reslearn reproduce` skips them: its own
tests show that and the sharing of runs among processes)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reslearn.checkpoint import load_checkpoint
from reslearn.train import train

from .helpers import train_cfg

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def study(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in bash with study_queue.sh sourced (this Python for its $PY)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "WORKERS": "2"}
    src = f"source {ROOT / 'benchmarks' / 'studies' / 'study_queue.sh'}\n{script}"
    return subprocess.run(["bash", "-c", src], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_kept_runs_come_back_in_a_fresh_runs_dir_the_unfinished_continues_the_finished_is_not_retrained(
    tiny_data, tmp_path
):
    out, kept = tmp_path / "runs", tmp_path / "kept"
    run = train(train_cfg(tiny_data, out / "cifar_resnet8-s1", iterations=12), stop_after=6)
    done = train(train_cfg(tiny_data, out / "cifar_resnet8-s2", iterations=6))
    assert (done / "final.json").is_file()  # what marks a finished run
    (kept / "cifar_resnet8-s2").mkdir(parents=True)
    (kept / "cifar_resnet8-s2" / "last.pt").write_bytes(b"stale")  # kept while it was unfinished
    r = study("keep_runs runs kept cifar_resnet8-s1 cifar_resnet8-s2 absent-s1", tmp_path)
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
    r = study("restore_runs runs kept cifar_resnet8-s1 cifar_resnet8-s2", tmp_path)
    assert "restored cifar_resnet8-s1 from kept" in r.stdout, r.stdout + r.stderr
    assert "restored cifar_resnet8-s2 from kept (finished)" in r.stdout, r.stdout
    assert load_checkpoint(run).iteration == 6
    train(resume=run)
    assert load_checkpoint(run).iteration == 12
    assert (run / "final.json").is_file()
    # what runs/ holds is never replaced by the kept copy
    (run / "final.json").unlink()
    before = (run / "last.pt").read_bytes()
    study("restore_runs runs kept cifar_resnet8-s1", tmp_path)
    assert (run / "last.pt").read_bytes() == before


def test_a_grown_study_takes_its_finished_runs_from_the_report_and_trains_only_the_new(tmp_path):
    docs = tmp_path / "docs"
    for run in ("a-s1", "a-s2"):  # the published report's copies: no weights
        (docs / run).mkdir(parents=True)
        for f in ("config.json", "metrics.jsonl", "final.json", "responses.json"):
            (docs / run / f).write_text(f"{run} {f}")
    (tmp_path / "out" / "a-s2").mkdir(parents=True)  # what runs/ has is never replaced
    (tmp_path / "out" / "a-s2" / "config.json").write_text("mine")
    r = study("restore_runs out docs a-s1 a-s2 a-s3", tmp_path)
    assert "restored a-s1 from docs (finished)" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "out" / "a-s1" / "metrics.jsonl").read_text() == "a-s1 metrics.jsonl"
    assert (tmp_path / "out" / "a-s2" / "config.json").read_text() == "mine"
    assert not (tmp_path / "out" / "a-s2" / "metrics.jsonl").exists()
    assert not (tmp_path / "out" / "a-s3").exists()  # new: nothing to restore


def test_a_study_finished_in_parts_forgets_only_the_kept_runs_of_its_part(tmp_path):
    """study.sh with --arms or --seeds trains part of a study: when that part is done, the
    checkpoints kept for the other parts stay (an unfinished run of another arm was lost)."""
    kept = tmp_path / "kept"
    for run in ("a-paper-s1", "a-bn64-s1", "a-pad-mean-s1"):
        (kept / run).mkdir(parents=True)
        (kept / run / "last.pt").write_bytes(b"checkpoint")
    (kept / "report.md").write_text("interim")
    r = study("forget_kept kept a-paper-s1 a-bn64-s1", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in kept.iterdir()) == ["a-pad-mean-s1", "report.md"]
    assert (kept / "a-pad-mean-s1" / "last.pt").read_bytes() == b"checkpoint"
    study("forget_kept kept a-pad-mean-s1", tmp_path)
    assert not kept.exists()  # every kept run is done: the folder and its interim report go
