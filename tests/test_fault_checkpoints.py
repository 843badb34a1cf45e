"""Faults, done for real: truncated, bit-flipped and code-running checkpoints."""

import os

import pytest
import torch

from reslearn.checkpoint import CheckpointError, load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.train import train

from .helpers import train_cfg


def test_truncated_and_bit_flipped_checkpoints_are_refused_with_their_path(tiny_data, tmp_path):
    run = train(train_cfg(tiny_data, tmp_path / "r", iterations=12))
    good = (run / "last.pt").read_bytes()
    assert load_checkpoint(run / "prev.pt").iteration == 6  # the one before is kept
    (run / "last.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=f"{run / 'last.pt'}.*truncated or corrupted.*prev.pt"):
        load_checkpoint(run)
    flipped = bytearray(good)
    flipped[int(len(good) * 0.6)] ^= 0x10  # inside the tensor data
    (run / "last.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=f"{run / 'last.pt'}.*(corrupted|not a readable).*prev.pt"):
        load_checkpoint(run)
    assert cli_main(["eval", str(run)]) == 2  # reported, never half-loaded
    # The previous checkpoint resumes the run.
    assert cli_main(["train", "--resume", str(run / "prev.pt"), "--progress", "none"]) == 0
    assert load_checkpoint(run).iteration == 12


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tiny_data, tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save(
        {"format": "reslearn-checkpoint", "format_version": 2, "x": _Evil(marker)}, tmp_path / "evil.pt"
    )
    with pytest.raises(CheckpointError, match="loading would have to execute"):
        load_checkpoint(tmp_path / "evil.pt")
    assert cli_main(["eval", str(tmp_path / "evil.pt")]) == 2
    err = capsys.readouterr().err
    assert "execute (posix.system)" in err and "not loaded" in err
    assert "weights_only" not in err and "export" in err  # never advice to switch the check off
    assert len(err.strip().splitlines()) == 1 and err.rstrip().endswith("safetensors`")  # whole
    assert not marker.exists()  # the command never ran


def test_torchs_own_text_is_never_shown_raw():
    """Issue 32: terminal colour codes are removed from torch's messages, and a message
    advising weights_only=False (switching the safety check off) is never passed on."""
    from reslearn.checkpoint import torch_says

    assert (
        torch_says(RuntimeError("\x1b[31mPytorchStreamReader failed\x1b[0m\nmore"))
        == "PytorchStreamReader failed"
    )
    advice = RuntimeError(
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` ..."
    )
    assert torch_says(advice) == "RuntimeError"
    assert torch_says(ValueError("")) == "ValueError"
