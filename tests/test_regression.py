"""The engine's numbers against recorded references, on any CPU kind (tests/regression.py)."""

import json

import pytest

from reslearn.cli import main as cli_main
from reslearn.train import read_metrics

from .regression import REGRESSION, check_or_record

THREADS = 2  # fixed: the thread count is part of what decides fp32's last bits


@pytest.mark.data
def test_resnet20_fp32_on_real_data_matches_its_reference(shared_data, tmp_path):
    """60 fp32 iterations of resnet20 on the shared CIFAR-10 copy: to the last bit where
    these kernels made the reference, inside the measured cross-kind band elsewhere."""
    ref = json.loads((REGRESSION / "resnet20_cpu_fp32_60it.json").read_text())
    args = [a.replace("{RESLEARN_DATA_ROOT}", str(shared_data)) for a in ref["args"]]
    out = tmp_path / "r"
    argv = args + ["--out", str(out), "--threads", str(THREADS), "--progress", "none", "--no-tensorboard"]
    assert cli_main(argv) == 0
    check_or_record("resnet20_cpu_fp32_60it.json", read_metrics(out), THREADS)


def test_float64_training_gives_the_same_numbers_on_every_cpu_kind(tiny_data, tmp_path):
    """12 float64 iterations of resnet8 with evaluations: portable by construction (kernel
    order moves float64 by ~1e-16, which 12 SGD steps leave far below 1e-9), so the same
    reference holds on every CPU kind and thread count."""
    out = tmp_path / "r"
    argv = [
        "train", "--model", "cifar_resnet8", "--data-dir", str(tiny_data), "--no-download",
        "--batch-size", "32", "--iterations", "12", "--eval-every", "4", "--seed", "3",
        "--dtype", "float64", "--channels-last", "off", "--device", "cpu", "--out", str(out),
        "--threads", str(THREADS), "--progress", "none", "--no-tensorboard",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    check_or_record("resnet8_cpu_fp64_12it.json", read_metrics(out), THREADS)
