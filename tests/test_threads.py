"""Threads per process and several jobs on one machine."""

import os
import subprocess
import sys

import pytest
import torch

from reslearn import threads
from reslearn.threads import ThreadPolicy, fair_share


@pytest.fixture(autouse=True)
def _keep_threads(monkeypatch):
    n = torch.get_num_threads()
    for k in threads.ENV_THREADS:
        monkeypatch.delenv(k, raising=False)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    "cores, others, share",
    [
        (2, [], 2),
        (2, ["auto"], 1),
        (2, ["1"], 1),
        (8, ["auto"], 4),
        (8, ["2", "auto"], 3),
        (2, ["2", "2"], 1),
    ],
)
def test_fair_share(cores, others, share):
    assert fair_share(cores, others) == share


def test_an_auto_job_shares_the_cores_with_the_jobs_it_sees(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    before = 2
    torch.set_num_threads(before)
    assert ThreadPolicy(0, tmp_path).update(force=True) == before  # not entered: changes nothing
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with ThreadPolicy(0, tmp_path) as p:
            assert (tmp_path / f"reslearn-job-{os.getpid()}").read_text() == "auto"
            assert p.update() == 4  # alone
            (tmp_path / f"reslearn-job-{other.pid}").write_text("auto")
            assert p.update() == 2  # another auto job started
            (tmp_path / f"reslearn-job-{other.pid}").write_text("3")
            assert p.update() == 1  # a job that fixed 3 threads leaves one core
            other.kill()
            other.wait()
            assert p.update() == 4  # it died (SIGKILL: it left its file behind)
            assert not (tmp_path / f"reslearn-job-{other.pid}").exists()  # which was swept
        assert not (tmp_path / f"reslearn-job-{os.getpid()}").exists()  # ours goes when the job ends
        assert torch.get_num_threads() == before  # and the caller's setting comes back
    finally:
        other.kill()


def test_threads_flag_and_environment_are_respected(tmp_path, monkeypatch):
    with ThreadPolicy(1, tmp_path) as p:
        assert torch.get_num_threads() == 1 and p.update() == 1
        assert (tmp_path / f"reslearn-job-{os.getpid()}").read_text() == "1"
        assert "--threads" in p.describe()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    (tmp_path / "reslearn-job-1").write_text("auto")  # pid 1 is alive: another auto job
    with ThreadPolicy(0, tmp_path) as p:
        assert p.update(force=True) == 2 and "OMP_NUM_THREADS" in p.describe()
    with pytest.raises(ValueError, match="-1"):
        ThreadPolicy(-1, tmp_path)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_threads_flag_beats_an_omp_num_threads_of_1_without_a_false_cap(tmp_path):
    # The study scripts (and torchrun) export OMP_NUM_THREADS=1: torch's default is then 1,
    # which says nothing of the cores; `--threads 2` had been "capped at 1 core".
    code = (
        "import torch; from reslearn.threads import ThreadPolicy, cpu_count\n"
        "with ThreadPolicy(2):\n    print(cpu_count(), torch.get_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESLEARN_JOBS_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(len(os.sched_getaffinity(0))), "2"] and "capped" not in res.stderr


def test_train_threads_flag_is_used_and_logged(tiny_data, tmp_path, capsys):
    from reslearn.cli import main

    args = ["train", "--model", "cifar_resnet8", "--data-dir", str(tiny_data), "--no-download"]
    args += ["--iterations", "2", "--batch-size", "16", "--out", str(tmp_path / "r"), "--device", "cpu"]
    assert main([*args, "--threads", "1", "--progress", "log", "--no-tensorboard"]) == 0
    assert "1 intra-op thread (--threads)" in capsys.readouterr().out
    assert main(["train", "--threads", "-2", "--data-dir", str(tiny_data)]) == 2
    assert "threads" in capsys.readouterr().err


def test_loader_workers_run_one_thread():
    from reslearn.data.base import make_loader

    class Probe(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.get_num_threads()

    loader = make_loader(Probe(), [[0, 1], [2, 3]], 2, torch.device("cpu"), lambda xs: xs)
    assert [n for batch in loader for n in batch] == [1, 1, 1, 1]


@pytest.mark.parametrize("command", ["eval", "predict", "bench"])
def test_eval_predict_and_bench_register_as_jobs(command, tmp_path, monkeypatch, capsys):
    """They compute like training does: a training job beside them must see them (and give
    up a share of the cores), and --threads fixes their count like train's."""
    from reslearn import bench, evaluate, predict
    from reslearn.cli import main

    monkeypatch.setenv("RESLEARN_JOBS_DIR", str(tmp_path))
    seen = []

    def record(*args, **kwargs):
        seen.append((torch.get_num_threads(), (tmp_path / f"reslearn-job-{os.getpid()}").read_text()))
        if command == "eval":
            return {
                "model": "m",
                "iteration": 0,
                "images": 1,
                "split": "test",
                "data": "d",
                "views": "single",
                "top1_err": 0.0,
                "top5_err": 0.0,
            }
        return ([], []) if command == "predict" else []

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", record)
    monkeypatch.setattr(predict, "predict_files", record)
    monkeypatch.setattr(bench, "run_bench", record)
    monkeypatch.setattr(bench, "format_table", lambda rows: "")
    args = {"eval": ["eval", "ckpt.pt"], "predict": ["predict", "ckpt.pt", "x.jpg"], "bench": ["bench"]}
    before = torch.get_num_threads()
    assert main([*args[command], "--threads", "1"]) == 0
    assert seen == [(1, "1")]
    assert not (tmp_path / f"reslearn-job-{os.getpid()}").exists() and torch.get_num_threads() == before
    assert main([*args[command]]) == 0
    assert seen[1][1] == "auto"
    assert main([*args[command], "--threads", "-1"]) == 2
    assert "-1" in capsys.readouterr().err


def test_a_jobs_folder_the_user_named_keeps_their_files(tmp_path):
    """RESLEARN_JOBS_DIR may name a folder of the user's: files not named as reslearn names
    its job files (reslearn-job-<pid>) are neither read nor removed, even when their names
    are the pids of dead processes (issue 32: mine/12345 was deleted)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    theirs = {str(dead.pid): "notes", "31337": "x", "777777": "auto", "reslearn-job-x": "y"}
    for name, text in theirs.items():
        (tmp_path / name).write_text(text)
    with ThreadPolicy(0, tmp_path) as p:
        p.update(force=True)
    assert {f.name: f.read_text() for f in tmp_path.iterdir()} == theirs
