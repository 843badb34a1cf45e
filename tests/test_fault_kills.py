"""Faults, done for real: SIGKILL, SIGTERM and SIGINT during training."""

import random
import signal
import time

import pytest
import torch

from reslearn.checkpoint import load_checkpoint

from .fault_helpers import cli_args, rows, spawn, wait_for_training


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run(tiny_data, tmp_path):
    ref = tmp_path / "ref"  # made the same way (a subprocess of one thread): same float sums
    proc = spawn(cli_args(tiny_data, ref), tmp_path / "cache")
    assert proc.wait(timeout=300) == 0
    run, rng, kills = tmp_path / "run", random.Random(7), 0
    for _attempt in range(12):
        args = cli_args(tiny_data, run) + ["--auto-resume"]
        proc = spawn(args, tmp_path / "cache")
        if kills < 3:
            try:
                wait_for_training(run, proc)
            except AssertionError:
                pass
            time.sleep(rng.uniform(0.0, 1.5))
            if proc.poll() is None:
                proc.kill()  # SIGKILL: no handler runs, nothing is flushed
                kills += 1
        proc.communicate(timeout=300)
        if (run / "final.json").exists():
            break
        load_checkpoint(run)  # whatever moment it died at, last.pt is whole
    assert kills >= 2 and (run / "final.json").exists()
    assert rows(run) == rows(ref)
    a, b = load_checkpoint(ref).model, load_checkpoint(run).model
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_write_a_checkpoint_of_the_current_iteration(tiny_data, tmp_path, sig, code):
    run = tmp_path / "run"
    args = cli_args(tiny_data, run, iterations=200, checkpoint_every=1000, eval_every=6)
    proc = spawn(args, tmp_path / "cache")
    wait_for_training(run, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    ckpt = load_checkpoint(run)
    assert f"at iteration {ckpt.iteration}" in err and f"--resume {run}" in err
    assert 0 < ckpt.iteration < 200  # written at the signal, not at a checkpoint boundary
    # ... and resuming from it continues the run exactly.
    ref = tmp_path / "ref"
    proc = spawn(
        cli_args(tiny_data, ref, iterations=200, checkpoint_every=1000, eval_every=6), tmp_path / "cache"
    )
    assert proc.wait(timeout=300) == 0
    proc = spawn(["train", "--resume", str(run), "--progress", "none"], tmp_path / "cache")
    assert proc.wait(timeout=300) == 0
    assert rows(run) == rows(ref)


def test_a_second_signal_stops_at_once(tiny_data, tmp_path):
    run = tmp_path / "run"
    proc = spawn(
        cli_args(tiny_data, run, iterations=100000, checkpoint_every=100000, eval_every=50), tmp_path / "c"
    )
    wait_for_training(run, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0


@pytest.mark.parametrize("at", [4, 6, 12])  # inside an interval, its last step, the run's last step
def test_a_signal_on_any_step_resumes_to_the_uninterrupted_run(tiny_data, tmp_path, monkeypatch, at):
    """In process, so the signal lands on a chosen step (the subprocess test above cannot
    choose): a signal during the last step of an interval must not lose its evaluation."""
    from reslearn.train import TrainStep, train
    from reslearn.train.faults import Interrupted

    from .helpers import train_cfg

    ref = train(train_cfg(tiny_data, tmp_path / "ref", iterations=12))
    step, calls = TrainStep.__call__, {"n": 0}

    def signalling_step(self, x, y):
        out = step(self, x, y)
        calls["n"] += 1
        if calls["n"] == at:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before this returns
        return out

    monkeypatch.setattr(TrainStep, "__call__", signalling_step)
    run = tmp_path / "run"
    if at < 12:
        with pytest.raises(Interrupted, match=f"at iteration {at};"):
            train(train_cfg(tiny_data, run, iterations=12))
        assert load_checkpoint(run).iteration == at
        monkeypatch.setattr(TrainStep, "__call__", step)
        train(resume=str(run))
    else:  # the signal came with the last step: the run is finished, not interrupted
        train(train_cfg(tiny_data, run, iterations=12))
    assert (run / "final.json").exists()
    assert rows(run) == rows(ref) and len(rows(ref)) == 2
    a, b = load_checkpoint(ref).model, load_checkpoint(run).model
    assert all(torch.equal(a[k], b[k]) for k in a)
