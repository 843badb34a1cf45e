"""Training and resume: schedules and warm-up, the engine's checkpoints, weight decay, the
data interface, rank awareness, exact resume, the fast path, and `reslearn train`/`eval`."""

import json
import math

import pytest
import torch

from reslearn import create_model, get_model_spec
from reslearn.checkpoint import CheckpointError, digest, load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.data import load_cifar10
from reslearn.data.device import DeviceData
from reslearn.distributed import DistInfo
from reslearn.train import (
    ModelConfig,
    OptimConfig,
    SpeedSettings,
    TrainConfig,
    TrainStep,
    engine,
    read_metrics,
    train,
)
from reslearn.train.optim import make_optimizer, norm_and_bias_parameters
from reslearn.train.schedules import Milestones, Plateau, WarmUp, milestone_iterations

from .helpers import train_cfg, write_imagefolder

KEYS = ("iteration", "epoch", "lr", "loss", "train_err", "test_err")


def cfg_for(data_dir, out, **kw) -> TrainConfig:
    """The shared config in fp32 NCHW: these tests compare numbers to the last bit."""
    return train_cfg(data_dir, out, **{"amp": "off", "channels_last": False, **kw})


def same_rows(a, b, tol=0.0):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in KEYS:
            va, vb = ra.get(k), rb.get(k)
            if isinstance(va, float) and isinstance(vb, float):
                assert abs(va - vb) <= tol, (k, va, vb)
            else:
                assert va == vb, (k, va, vb)


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_is_versioned_and_plain(tiny_data, tmp_path):
    run = train(cfg_for(tiny_data, tmp_path / "r", iterations=6))
    raw = torch.load(run / "last.pt", weights_only=True)  # plain types and tensors only
    assert raw["format"] == "reslearn-checkpoint" and raw["format_version"] == 3
    assert "spec" not in raw and "model_options" not in raw  # derived from the config and classes
    ckpt = load_checkpoint(run)
    assert ckpt.spec["name"] == "cifar_resnet8" and ckpt.model_options["num_classes"] == 10
    old = {**raw, "format_version": 2, "spec": ckpt.spec, "model_options": ckpt.model_options}
    old["digest"] = digest(old)
    torch.save(old, tmp_path / "v2.pt")  # format 2 also stored them: still read, the same net
    assert load_checkpoint(tmp_path / "v2.pt").model_options == ckpt.model_options
    raw["format_version"] = 99
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")
    (tmp_path / "trunc.pt").write_bytes((run / "last.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_checkpoint(tmp_path / "trunc.pt")


# ---------------------------------------------------------------- optimisation
def test_which_parameters_get_weight_decay():
    m = create_model("resnet20")
    nb = norm_and_bias_parameters(m)
    names = {n for n, p in m.named_parameters() if id(p) in nb}
    assert "fc.bias" in names and "bn1.weight" in names and "layer3.2.bn2.bias" in names
    assert not any(n.endswith("conv1.weight") or n == "fc.weight" for n in names)
    # Paper (default): one group, every parameter decayed by 1e-4.
    opt = make_optimizer(m, OptimConfig(), torch.device("cpu"))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 1e-4
    assert len(opt.param_groups[0]["params"]) == len(list(m.parameters()))
    # torchvision's --norm-weight-decay 0: BN and bias parameters are not decayed.
    opt = make_optimizer(m, OptimConfig(norm_weight_decay=0.0), torch.device("cpu"))
    decayed, free = opt.param_groups
    assert decayed["weight_decay"] == 1e-4 and free["weight_decay"] == 0.0
    assert {id(p) for p in free["params"]} == nb
    assert all(p.ndim == 4 or p is m.fc.weight for p in decayed["params"])


def test_norm_weight_decay_changes_training_only_where_it_applies(tiny_data, tmp_path):
    a = load_checkpoint(train(cfg_for(tiny_data, tmp_path / "a", iterations=6)))
    cfg = cfg_for(tiny_data, tmp_path / "b", iterations=6)
    cfg.optim.norm_weight_decay = 0.0
    b = load_checkpoint(train(cfg))
    assert not torch.equal(a.model["bn1.weight"], b.model["bn1.weight"])
    assert a.config["optim"]["norm_weight_decay"] is None and b.config["optim"]["norm_weight_decay"] == 0.0


# ---------------------------------------------------------------- data interface
def _device_data(tiny_data, augment=True, dist=DistInfo(), batch=40):
    arrays = load_cifar10(tiny_data, download=False)
    return DeviceData(
        arrays, batch_size=batch, seed=1, device=torch.device("cpu"), augment=augment, dist=dist
    )


def test_each_epoch_covers_every_training_image_once(tiny_data):
    data = _device_data(tiny_data)
    assert data.steps_per_epoch() == 5  # 200 images, batch 40
    for epoch in (0, 1):
        idx = data.epoch_indices(epoch)
        assert sorted(idx.tolist()) == list(range(200))
    assert not torch.equal(data.epoch_indices(0), data.epoch_indices(1))  # reshuffled
    assert torch.equal(data.epoch_indices(3), _device_data(tiny_data).epoch_indices(3))  # by (seed, epoch)
    labels = torch.cat([y for _, y in _device_data(tiny_data, augment=False).batches(0, 0)])
    assert sorted(labels.tolist()) == sorted(data.train_y.tolist())


def test_augmentation_is_applied_in_the_loop(tiny_data):
    plain = _device_data(tiny_data, augment=False)
    aug = _device_data(tiny_data, augment=True)
    idx = plain.epoch_indices(0)[:40]
    x_plain, _ = next(plain.batches(0, 0))
    x_aug, _ = next(aug.batches(0, 0))
    assert torch.equal(x_plain, plain.normalizer(plain.train_x[idx]))  # no augmentation: exact
    assert x_aug.shape == x_plain.shape and not torch.equal(x_aug, x_plain)
    # Padding is black before the mean is subtracted: some crops show -mean at their border.
    black = (x_aug == -aug.normalizer.mean).all(1)  # (B, H, W)
    assert black.any()


def test_batches_are_sharded_by_rank(tiny_data):
    full = _device_data(tiny_data, augment=False)
    parts = [_device_data(tiny_data, augment=False, dist=DistInfo(r, 2)) for r in (0, 1)]
    _, y = next(full.batches(0, 0))
    (_, y0), (_, y1) = (next(p.batches(0, 0)) for p in parts)
    assert len(y0) == len(y1) == 20
    idx = full.epoch_indices(0)[:40]
    assert torch.equal(torch.cat([idx[0::2], idx[1::2]]).sort().values, idx.sort().values)
    assert sorted(torch.cat([y0, y1]).tolist()) == sorted(y.tolist())


def test_stream_loader_gives_the_device_loaders_run(tmp_path):
    root = write_imagefolder(tmp_path / "folder", per_class=12)  # 36 train images, 32x32
    rows, weights = {}, {}
    for loader in ("device", "stream"):
        cfg = cfg_for(root, tmp_path / loader, iterations=8, batch=8, eval_every=4)
        cfg.data.loader = loader
        cfg.data.workers = 1
        run = train(cfg)
        rows[loader], weights[loader] = read_metrics(run), load_checkpoint(run).model
    same_rows(rows["device"], rows["stream"])
    assert all(torch.equal(weights["device"][k], weights["stream"][k]) for k in weights["device"])


@pytest.mark.parametrize("loader", ["device", "stream"])
def test_pad_fill_reaches_each_cifar_loaders_pipeline_and_changes_the_run(tmp_path, loader):
    from reslearn.train.engine import make_train_data
    from reslearn.train.recipes import resolve

    root = write_imagefolder(tmp_path / "folder", per_class=12)
    weights = {}
    for fill in ("black", "mean"):
        cfg = cfg_for(root, tmp_path / fill, iterations=2, batch=8, eval_every=2)
        cfg.data.loader, cfg.data.workers, cfg.data.pad_fill = loader, 1, fill
        data = make_train_data(resolve(cfg, get_model_spec(cfg.model.name)), torch.device("cpu"), DistInfo())
        assert data.pipeline.pad_fill == fill
        weights[fill] = load_checkpoint(train(cfg)).model
    assert any(not torch.equal(weights["black"][k], weights["mean"][k]) for k in weights["black"])


# ---------------------------------------------------------------- schedule
@pytest.mark.parametrize(
    "name,mode,on",
    [
        ("resnet110", "auto", True),
        ("plain110", "auto", True),
        ("resnet1202", "auto", True),
        ("resnet56", "auto", False),
        ("resnet18", "auto", False),
        ("resnet20", "on", True),
        ("resnet110", "off", False),
    ],
)
def test_auto_warmup_follows_the_spec_depth(name, mode, on):
    cfg = TrainConfig(ModelConfig(name), optim=OptimConfig(warmup=mode))
    assert engine.warmup_enabled(cfg, get_model_spec(name)) is on


def test_resume_in_the_middle_of_a_warmup_window(tiny_data, tmp_path):
    """The warm-up window's counts are part of the state: stopping inside a window and
    resuming ends the warm-up at the same iteration as the uninterrupted run."""

    def cfg(out):
        c = cfg_for(tiny_data, out, iterations=12, eval_every=1)
        c.optim.warmup, c.optim.warmup_check_every, c.optim.warmup_until_err = "on", 4, 101.0
        return c

    full = train(cfg(tmp_path / "full"))
    train(cfg(tmp_path / "part"), stop_after=2)  # inside the first window (iterations 1-4)
    train(resume=tmp_path / "part")
    a, b = read_metrics(full), read_metrics(tmp_path / "part")
    assert [r["lr"] for r in a][:5] == [0.01] * 4 + [0.1]  # warm-up ends after iteration 4
    same_rows(a, b)


def test_epochs_path(tiny_data, tmp_path):
    cfg = cfg_for(tiny_data, tmp_path / "e", iterations=12, eval_every=0)
    cfg = cfg.replace({"optim.epochs": 2})
    assert cfg.optim.iterations is None
    rows = read_metrics(train(cfg))
    assert [(r["iteration"], r["epoch"]) for r in rows] == [(6, 1.0), (12, 2.0)]  # 200 // 32 = 6 a epoch
    assert json.loads((tmp_path / "e" / "final.json").read_text())["iteration"] == 12


# ---------------------------------------------------------------- ranks
def test_only_the_main_process_writes_files_and_runs_git(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "init_from_env", lambda device: DistInfo(rank=1, world_size=1))

    def no_git():
        raise AssertionError("git ran on a non-main process")

    monkeypatch.setattr(engine, "git_commit", no_git)
    out = tmp_path / "r1"
    train(cfg_for(tiny_data, out, iterations=6))
    assert not out.exists()


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
    assert window(warm, 90, 100) is None and warm.lr(400) == 0.01  # 90% >= 80%: still warming up
    assert "warm-up done" in window(warm, 79, 100) and warm.lr(400) == 0.1  # below 80%: the paper's lr
    assert warm.lr(32_000) == pytest.approx(0.01) and not warm.active
    assert milestone_iterations(2000, (0.5, 0.75)) == [1000, 1500]  # --iterations scales


def window(warm, err: int, n: int):
    """One whole warm-up window of ``n`` images with ``err`` wrong, as one step (one process)."""
    warm.window_steps = 1
    return warm.observe_step(torch.tensor(err), n, 400, lambda t: t)


def test_schedules_resume_from_their_state():
    """Each schedule's state_dict restores it exactly, warm-up window and plateau included."""
    a = WarmUp(Plateau(0.1, patience=2, threshold=0.5), window_steps=5)
    for e in (50, 40, 40.2):
        a.observe_eval(e, 0)
    for _ in range(2):  # two steps of a window of five: 3 wrong of 64 so far, on the "device"
        a.observe_step(torch.tensor(1 if a.window["n"] else 2), 32, 1, lambda t: t)
    assert a.state_dict()["window"] == {"err": 3, "n": 64}
    b = WarmUp(Plateau(0.1, patience=2, threshold=0.5), window_steps=5)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # plain types
    assert b.state_dict() == a.state_dict() and b.inner == a.inner
    assert "plateaued" in b.observe_eval(40.1, 9) and b.lr(0) == pytest.approx(0.01)  # 0.1 / 10, capped
    assert window(b, 10, 100) and b.lr(0) == pytest.approx(0.01) and b.inner.drops == 1


def test_a_schedule_added_here_drives_training(tiny_data, tmp_path, monkeypatch, capsys):
    """A new schedule is a class of the protocol and one registry entry (train/schedules.py)."""
    from reslearn.train.schedules import SCHEDULES, Schedule

    class Cosine(Schedule):
        def __init__(self, base_lr: float, total: int) -> None:
            self.base_lr, self.total = base_lr, total

        def lr(self, iteration: int) -> float:
            return self.base_lr * 0.5 * (1 + math.cos(math.pi * iteration / self.total))

        def describe(self) -> str:
            return f"cosine from lr {self.base_lr:g}"

    monkeypatch.setitem(SCHEDULES, "cosine", lambda o, total, per_epoch: Cosine(o.lr, total))
    out = tmp_path / "cos"
    argv = ["train", "--model", "cifar_resnet8", "--data-dir", str(tiny_data), "--no-download",
            "--iterations", "8", "--eval-every", "2", "--batch-size", "32", "--out", str(out),
            "--progress", "log", "--no-tensorboard", "--device", "cpu", "--schedule", "cosine"]  # fmt: skip
    assert cli_main(argv) == 0
    assert "cosine from lr 0.1" in capsys.readouterr().out
    lrs = [r["lr"] for r in read_metrics(out)]  # the lr of each interval's last step
    assert lrs == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * i / 8)) for i in (1, 3, 5, 7)])


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


def test_a_recipe_added_here_trains_with_its_numbers(tiny_data, tmp_path, monkeypatch):
    """A recipe is one registry entry (reslearn.recipes): --recipe NAME resolves the run's
    batch, length, schedule, loader and evaluation batch from it, and the config keeps them."""
    from reslearn.recipes import RECIPES, Recipe

    short = Recipe("cifar-short", 32, 4, "step", "device", 50, photos=False, about="a test's")
    monkeypatch.setitem(RECIPES, short.name, short)
    out = tmp_path / "short"
    argv = ["train", "--model", "cifar_resnet8", "--data-dir", str(tiny_data), "--no-download",
            "--recipe", "cifar-short", "--out", str(out), "--progress", "none", "--no-tensorboard",
            "--device", "cpu", "--schedule", "milestones"]  # fmt: skip
    assert cli_main(argv) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["optim"]["recipe"] == "cifar-short" and cfg["optim"]["batch_size"] == 32
    assert cfg["optim"]["iterations"] == 4 and cfg["data"]["loader"] == "device"
    assert cfg["run"]["eval_batch_size"] == 50
    assert [r["iteration"] for r in read_metrics(out)][-1] == 4
