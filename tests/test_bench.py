import json

import pytest
import torch

from reslearn.bench import format_table, run_bench
from reslearn.cli import main as cli_main


def test_bench_rows_and_table():
    rows = run_bench(["cifar_resnet8"], "cpu", batch_size=4, log=lambda *a: None)
    assert [(r.model, r.mode) for r in rows] == [("cifar_resnet8", "baseline"), ("cifar_resnet8", "reslearn")]
    for r in rows:
        assert r.train_img_s > 0 and r.infer_img_s > 0 and r.batch_size == 4
        assert r.macs_per_image > 0 and r.ceiling_train_img_s > 0
    assert rows[0].settings == "NCHW, fp32"
    table = format_table(rows)
    assert "baseline" in table and "reslearn" in table and "1.00x" in table


def test_bench_cli_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        cli_main(
            ["bench", "--models", "cifar_resnet8", "--device", "cpu", "--batch-size", "4", "--json", str(out)]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    for k in ("model", "mode", "device", "batch_size", "train_img_s", "infer_img_s"):
        assert k in rows[0]
    assert "matrix-multiply rate" in capsys.readouterr().out
    assert cli_main(["bench", "--models", "resnet9", "--device", "cpu"]) == 2
    assert "6n+2" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_cuda_rows():
    rows = run_bench(["cifar_resnet8"], "cuda", batch_size=32, log=lambda *a: None)
    assert rows[1].settings == "channels_last, bf16" and rows[1].device.startswith("cuda")
    assert all(r.train_img_s > 0 and r.infer_img_s > 0 for r in rows)
