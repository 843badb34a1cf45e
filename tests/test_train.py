import json
import math

import pytest
import torch

from reslearn.checkpoint import load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.train import (
    ModelConfig,
    OptimConfig,
    RunConfig,
    SpeedSettings,
    TrainStep,
    read_metrics,
    train,
)
from reslearn.train.schedules import Milestones, Plateau, WarmUp, milestone_iterations

from .helpers import train_cfg

TIMING = ("images_per_s", "wall_s")


def test_paper_schedule_milestones_and_warmup():
    ms = milestone_iterations(64_000, (0.5, 0.75))
    assert ms == [32_000, 48_000]
    paper = Milestones(0.1, ms)
    assert paper.lr(0) == 0.1
    assert paper.lr(31_999) == 0.1
    assert paper.lr(32_000) == pytest.approx(0.01)
    assert paper.lr(47_999) == pytest.approx(0.01)
    assert paper.lr(48_000) == pytest.approx(0.001)
    assert paper.lr(63_999) == pytest.approx(0.001)
    warm = WarmUp(Milestones(0.1, ms), lr_warm=0.01)
    assert warm.lr(0) == 0.01  # ResNet-110 warm-up
    assert warm.lr(400) == 0.01
    assert not warm.end_window(err=90, n=100) and warm.lr(400) == 0.01  # 90% >= 80%: still warming up
    assert warm.end_window(err=79, n=100) and warm.lr(400) == 0.1  # below 80%: the paper's lr
    assert warm.lr(32_000) == pytest.approx(0.01) and not warm.active
    assert milestone_iterations(2000, (0.5, 0.75)) == [1000, 1500]  # --iterations scales


def test_schedules_resume_from_their_state():
    """Each schedule's state_dict restores it exactly, warm-up window and plateau included."""
    a = WarmUp(Plateau(0.1, patience=2, threshold=0.5), window_steps=5)
    for e in (50, 40, 40.2):
        a.observe(e)
    a.window = {"err": 3, "n": 64}
    b = WarmUp(Plateau(0.1, patience=2, threshold=0.5), window_steps=5)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # plain types
    assert b == a
    assert b.observe(40.1) and b.lr(0) == pytest.approx(0.01)  # plateau: 0.1 / 10, capped at 0.01
    assert b.end_window(10, 100) and b.lr(0) == pytest.approx(0.01) and b.inner.drops == 1


def test_warmup_switches_on_training_error(tiny_data, tmp_path):
    """Warm-up (forced on): lr 0.01 until the windowed training error < threshold."""
    cfg = train_cfg(tiny_data, tmp_path / "w", iterations=12, eval_every=1)
    cfg.optim.warmup = "on"
    cfg.optim.warmup_check_every = 2
    cfg.optim.warmup_until_err = 101.0  # always below: ends at the first check
    train(cfg)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "w")]
    assert lrs[:2] == [0.01, 0.01] and lrs[2] == 0.1
    cfg = train_cfg(tiny_data, tmp_path / "w2", iterations=12, eval_every=1)
    cfg.optim.warmup = "on"
    cfg.optim.warmup_until_err = 0.0  # never below: warm-up lasts until the first milestone
    train(cfg)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "w2")]
    assert lrs[:6] == [0.01] * 6 and lrs[6] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)


def test_loss_falls_and_files_are_written(tiny_data, tmp_path):
    run = train(train_cfg(tiny_data, tmp_path / "run", iterations=30))
    rows = read_metrics(run)
    assert [r["iteration"] for r in rows] == [6, 12, 18, 24, 30]
    assert rows[-1]["loss"] < rows[0]["loss"]
    for k in (
        "iteration",
        "epoch",
        "lr",
        "loss",
        "train_err",
        "test_err",
        "images_per_s",
        "wall_s",
    ):
        assert k in rows[0]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["name"] == "cifar_resnet8" and cfg["optim"]["batch_size"] == 32
    final = json.loads((run / "final.json").read_text())
    assert final["iteration"] == 30 and final["test_err"] == rows[-1]["test_err"]
    ckpt = load_checkpoint(run)
    assert ckpt.iteration == 30 and not any(k.startswith("_orig_mod") for k in ckpt.model)
    assert ckpt.spec["name"] == "cifar_resnet8" and ckpt.spec["depth"] == 8 and ckpt.spec["residual"]
    assert ckpt.optimizer["state"] and set(ckpt.preprocessing) == {"mean", "std"}
    assert {"rng", "data", "meters", "schedule"} <= set(ckpt.train_state)
    assert ckpt.config["optim"]["iterations"] == 30 and ckpt.classes[:2] == ["airplane", "automobile"]


def test_progress_bar_and_log_lines(tiny_data, tmp_path, capsys):
    train(train_cfg(tiny_data, tmp_path / "bar", iterations=12, progress="bar"))
    err = capsys.readouterr().err
    assert "12/12" in err  # tqdm's bar (with its ETA) goes to stderr
    train(train_cfg(tiny_data, tmp_path / "log", iterations=12, progress="log"))
    out = capsys.readouterr().out
    assert "it 6/12" in out and "it 12/12" in out and "test_err" in out


def test_resume_equals_uninterrupted(tiny_data, tmp_path):
    full = train(train_cfg(tiny_data, tmp_path / "full", iterations=24, checkpoint_every=5))
    part_cfg = train_cfg(tiny_data, tmp_path / "part", iterations=24, checkpoint_every=5)
    train(part_cfg, stop_after=13)  # "killed" after iteration 13 (last checkpoint: 13)
    assert load_checkpoint(tmp_path / "part").iteration == 13
    # A run dir that holds a run is never overwritten by a fresh start.
    with pytest.raises(ValueError, match="--resume"):
        train(train_cfg(tiny_data, tmp_path / "part", iterations=24))
    train(resume=str(tmp_path / "part"))
    a, b = read_metrics(full), read_metrics(tmp_path / "part")
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in TIMING} == {
            k: v for k, v in rb.items() if k not in TIMING
        }
    wa, wb = load_checkpoint(full).model, load_checkpoint(tmp_path / "part").model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_val_split_and_mean_from_training_split_only(tiny_data, tmp_path):
    from reslearn.data import load_cifar10

    cfg = train_cfg(tiny_data, tmp_path / "v", iterations=6)
    cfg.data.val_split = 50
    run = train(cfg)
    rows = read_metrics(run)
    assert "val_err" in rows[-1] and rows[-1]["test_err"] is not None
    a = load_cifar10(tiny_data, download=False)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(cfg.run.seed))
    train_mean = (a.train_x[perm[50:]].float() / 255).mean(0)
    all_mean = (a.train_x.float() / 255).mean(0)
    mean = load_checkpoint(run).preprocessing["mean"]
    assert torch.allclose(mean, train_mean, atol=1e-6)
    assert not torch.allclose(mean, all_mean, atol=1e-4)
    # Intermediate evaluations leave the test split untouched.
    cfg = train_cfg(tiny_data, tmp_path / "v2", iterations=12)
    cfg.data.val_split = 50
    rows = read_metrics(train(cfg))
    assert rows[0]["test_err"] is None and rows[-1]["test_err"] is not None


def test_fast_path_matches_baseline_loss():
    """bf16/channels_last step gives the same loss as the fp32 NCHW step on one batch."""
    from reslearn import create_model

    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    losses = {}
    for name, speed in (
        ("base", SpeedSettings.baseline()),
        ("fast", SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16)),
    ):
        torch.manual_seed(1)
        m = create_model("resnet20")
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        step = TrainStep(m, opt, speed, torch.device("cpu"))
        losses[name] = (step(x, y)[0].item(), step(x, y)[0].item())
    for a, b in zip(losses["base"], losses["fast"]):
        assert abs(a - b) / a < 0.03  # bf16 tolerance


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fast_path_matches_baseline_loss():
    from reslearn import create_model

    dev = torch.device("cuda")
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, device=dev), torch.randint(0, 10, (16,), device=dev)
    out = []
    for speed in (SpeedSettings.baseline(), SpeedSettings.fast(dev)):
        torch.manual_seed(1)
        m = create_model("resnet20").to(dev)
        step = TrainStep(m, torch.optim.SGD(m.parameters(), lr=0.1), speed, dev)
        out.append(step(x, y)[0].item())
    assert abs(out[0] - out[1]) / out[0] < 0.03


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_run_compiled(tiny_data, tmp_path):
    """The GPU path end to end: data on the device, bf16, CUDA-graph compile, fp32 eval."""
    run = train(train_cfg(tiny_data, tmp_path / "cuda", iterations=12, device="cuda", compile=True))
    rows = read_metrics(run)
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
    assert all(0 <= r["test_err"] <= 100 for r in rows)
    assert json.loads((run / "final.json").read_text())["device"].startswith("cuda")
    assert not any(k.startswith("_orig_mod") for k in load_checkpoint(run).model)


def test_cli_train_and_eval_json(tiny_data, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(
        [
            "train",
            "--model",
            "cifar_resnet8",
            "--data-dir",
            str(tiny_data),
            "--no-download",
            "--iterations",
            "6",
            "--batch-size",
            "32",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--progress",
            "log",
        ]
    )
    assert rc == 0
    capsys.readouterr()
    assert cli_main(["eval", str(out), "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 60 and 0 <= res["top1_err"] <= 100 and res["top5_err"] <= res["top1_err"]
    assert res["top1_err"] == pytest.approx(read_metrics(out)[-1]["test_err"])
    assert cli_main(["train", "--model", "resnet21", "--data-dir", str(tiny_data)]) == 2
    assert "6n+2" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path / "nope")]) == 2


def test_config_validation_names_bad_values():
    with pytest.raises(ValueError, match="-3"):
        OptimConfig(batch_size=-3)
    with pytest.raises(ValueError, match="'fp8'"):
        RunConfig(amp="fp8")
    with pytest.raises(ValueError, match="'tpu'"):
        RunConfig(device="tpu")
    with pytest.raises(ValueError, match="0.9"):
        OptimConfig(milestones=(0.9, 0.5))
    with pytest.raises(ValueError, match="'E'"):
        ModelConfig(shortcut="E")
