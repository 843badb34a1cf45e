"""Faults, done for real: full and read-only disks, run directories that hold a run."""

import errno
import json
import subprocess

import pytest
import torch

from reslearn.checkpoint import load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.train import train
from reslearn.train.faults import RunError

from .fault_helpers import cli_args
from .helpers import train_cfg


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (room for one checkpoint of cifar_resnet8, not two); None where
    mounting is not allowed (then the test simulates ENOSPC)."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True)
    yield d if r.returncode == 0 else None
    if r.returncode == 0:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_full_disk_keeps_the_previous_checkpoint(tiny_data, tmp_path, small_disk, monkeypatch):
    if small_disk is None:  # simulate: the second checkpoint write finds the disk full
        real, calls = torch.save, []

        def full(obj, f, *a, **k):
            calls.append(1)
            if len(calls) > 1:
                f.write(b"x" * 1000)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(obj, f, *a, **k)

        monkeypatch.setattr(torch, "save", full)
        out = tmp_path / "sim"
    else:
        out = small_disk / "run"
    with pytest.raises(RunError, match="could not write the checkpoint.*No space left.*iteration 6.* intact"):
        train(train_cfg(tiny_data, out))
    assert load_checkpoint(out).iteration == 6  # the first one, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half file left


def test_a_read_only_run_directory_is_an_error_naming_it(tiny_data, tmp_path, small_disk):
    if small_disk is None:
        pytest.skip("needs a tmpfs mount to make a read-only directory (tests run as root)")
    out = small_disk / "run"
    train(train_cfg(tiny_data, out, iterations=6))
    before = (out / "last.pt").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(RunError, match=f"cannot write into the run directory {out}"):
        train(resume=out, overrides={"optim.iterations": 12})
    assert (out / "last.pt").read_bytes() == before


def test_overwrite_replaces_a_run_only_when_asked(tiny_data, tmp_path, capsys):
    out = tmp_path / "r"
    args = cli_args(tiny_data, out, iterations=6, eval_every=6, checkpoint_every=6)
    assert cli_main(args) == 0
    assert cli_main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite", "--seed", "5"]) == 0
    assert json.loads((out / "config.json").read_text())["run"]["seed"] == 5
    assert not (out / "prev.pt").exists() or load_checkpoint(out / "prev.pt").config["run"]["seed"] == 5


def test_written_files_get_the_umask_mode_and_a_replaced_file_keeps_its_own(tiny_data, tmp_path):
    """Atomic writes go through a private (0600) temporary; the files must not stay private:
    a checkpoint, a config or an export is readable by whoever the umask lets read it."""
    import os

    from reslearn.files import atomic_write_text

    old = os.umask(0o022)
    try:
        run = train(train_cfg(tiny_data, tmp_path / "run", iterations=2))
        assert cli_main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "m.st")]) == 0
        for f in (run / "last.pt", run / "config.json", tmp_path / "m.st"):
            assert f.stat().st_mode & 0o777 == 0o644, (f, oct(f.stat().st_mode))
        kept = tmp_path / "kept.txt"
        kept.write_text("a")
        kept.chmod(0o640)
        atomic_write_text(kept, "b")
        assert kept.read_text() == "b" and kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
