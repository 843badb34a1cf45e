import json

import pytest
import torch

from reslearn import bench
from reslearn.bench import format_table, run_bench
from reslearn.cli import main as cli_main

QUICK = dict(repeat=2, seconds=0.05)


def test_bench_rows_and_table():
    rows = run_bench(["cifar_resnet8"], "cpu", batch_size=4, log=lambda *a: None, **QUICK)
    assert [(r.model, r.mode) for r in rows] == [("cifar_resnet8", "baseline"), ("cifar_resnet8", "reslearn")]
    for r in rows:
        assert r.train_img_s > 0 and r.infer_img_s > 0 and r.batch_size == 4 and r.rounds == 2
        assert r.train_img_s_min <= r.train_img_s <= r.train_img_s_max
        assert r.macs_per_image > 0 and r.ceiling_train_img_s > 0 and r.first_step_s > 0
    assert rows[0].settings == "NCHW, fp32"
    assert rows[0].train_ratio == rows[0].train_ratio_min == rows[0].train_ratio_max == 1.0
    table = format_table(rows)
    assert "baseline" in table and "reslearn" in table and "1.00x (1.00-1.00)" in table


def test_rounds_interleave_and_ratios_are_paired(monkeypatch):
    """The machine slows down 3x after the first round; the mode that is twice as fast in
    every round must still show 2.00x with no spread, and no mode always runs first."""
    calls = []

    def fake_timed(fn, device, steps):
        c = fn.__self__
        if fn.__name__ == "train":
            calls.append(c.mode)
        slow = 1 if len(calls) <= 2 else 3
        return slow * (1.0 if c.mode == "baseline" else 0.5)

    monkeypatch.setattr(bench, "_timed", fake_timed)
    monkeypatch.setattr(bench, "_steps_for", lambda fn, device, seconds: 1)
    rows = bench.bench_model(
        "cifar_resnet8",
        torch.device("cpu"),
        2,
        ("baseline", "reslearn"),
        repeat=4,
        seconds=1,
        ceilings={m: bench.Ceiling(100.0, 50.0, 1000.0, 1000.0) for m in ("baseline", "reslearn")},
    )
    assert calls == ["baseline", "reslearn", "reslearn", "baseline"] * 2
    fast = rows[1]
    assert fast.train_ratio == fast.train_ratio_min == fast.train_ratio_max == 2.0
    assert fast.train_img_s_min == pytest.approx(2 / 1.5) and fast.train_img_s_max == pytest.approx(4.0)
    assert fast.ceiling_train_img_s == pytest.approx(10.0) and fast.ceiling_infer_img_s == pytest.approx(20.0)
    assert fast.train_fraction == pytest.approx(fast.train_img_s / 10.0)


def test_the_ceiling_counts_every_multiply_add_of_a_training_step():
    """resnet20 (option A: no shortcut convolutions): the stem, 18 block convolutions and
    the fc; identical calls are timed once and counted. A training image costs 3x the
    forward's mult-adds, less the stem's input gradient (the image needs none)."""
    torch.manual_seed(0)
    model = bench.create_model("resnet20")
    x, cpu = torch.randn(4, 3, 32, 32), torch.device("cpu")
    calls = bench._layer_calls(model, x)
    assert sum(calls.values()) == 20 and len(calls) == 7  # stem, 2 per stage (+1 strided), fc
    stem = [k for k in calls if k[1] == (4, 3, 32, 32)]
    assert len(stem) == 1 and stem[0][2] is False and calls[stem[0]] == 1
    assert all(needs for (_, shape, needs) in calls if shape != (4, 3, 32, 32))
    c = bench.measure_ceiling(model, x, bench.SpeedSettings(), cpu)
    fwd = bench.complexity(model, (32, 32)).macs
    stem_macs = 32 * 32 * 16 * 3 * 9
    assert c.infer_macs == fwd and c.train_macs == 3 * fwd - stem_macs
    assert c.train_rate > 0 and c.train_img_s == c.train_rate / c.train_macs


def test_bad_bench_arguments_are_named():
    with pytest.raises(ValueError, match="'turbo'"):
        run_bench(["cifar_resnet8"], "cpu", modes=("baseline", "turbo"), log=lambda *a: None)
    with pytest.raises(ValueError, match="repeat"):
        bench.bench_model("cifar_resnet8", torch.device("cpu"), 2, repeat=0)


def test_bench_cli_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--models", "cifar_resnet8", "--device", "cpu", "--batch-size", "4"]
    assert cli_main([*args, "--repeat", "2", "--seconds", "0.05", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    for k in ("model", "mode", "device", "batch_size", "train_img_s", "train_ratio_min", "first_step_s"):
        assert k in rows[0]
    assert "mult-adds per training image" in capsys.readouterr().out
    assert cli_main(["bench", "--models", "resnet9", "--device", "cpu"]) == 2
    assert "6n+2" in capsys.readouterr().err
    assert cli_main([*args, "--modes", "baseline,warp"]) == 2
    assert "'warp'" in capsys.readouterr().err


def test_every_mode_is_in_the_cli_help(capsys):
    with pytest.raises(SystemExit):
        cli_main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(m in text for m in bench.MODES)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_cuda_rows():
    rows = run_bench(["cifar_resnet8"], "cuda", batch_size=32, log=lambda *a: None, **QUICK)
    assert rows[1].settings == "channels_last, bf16" and rows[1].device.startswith("cuda")
    assert all(r.train_img_s > 0 and r.infer_img_s > 0 for r in rows)
