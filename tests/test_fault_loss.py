"""Faults, done for real: non-finite losses."""

import numpy as np
import pytest
import torch

from reslearn.checkpoint import load_checkpoint
from reslearn.train import train
from reslearn.train.faults import RunError

from .fault_helpers import rows
from .helpers import train_cfg


@pytest.fixture
def nan_at_iteration_8(monkeypatch):
    from reslearn.data.device import DeviceData

    real = DeviceData.preprocess_train
    count = {"n": 0}

    def poisoned(self, xb, global_batch):
        count["n"] += 1
        x = real(self, xb, global_batch)
        return x * float("nan") if count["n"] == 8 else x

    monkeypatch.setattr(DeviceData, "preprocess_train", poisoned)


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, nan_at_iteration_8):
    out = tmp_path / "nan"
    with pytest.raises(
        RunError, match=r"non-finite \(NaN or inf\) at iteration 8, lr 0\.01.*last.pt \(iteration 6\)"
    ):
        train(train_cfg(tiny_data, out))
    ckpt = load_checkpoint(out)
    assert ckpt.iteration == 6 and all(
        torch.isfinite(v).all() for v in ckpt.model.values() if v.is_floating_point()
    )


def test_nan_policy_skip_batch_skips_and_counts(tiny_data, tmp_path, nan_at_iteration_8):
    cfg = train_cfg(tiny_data, tmp_path / "skip", nan_policy="skip-batch")
    r = rows(train(cfg))
    assert [x["skipped_batches"] for x in r] == [0, 1]
    assert all(np.isfinite(x["loss"]) for x in r)
