"""The training engine: checkpoints, weight decay, the data interface, rank awareness, warm-up,
and the configuration from every source (flags, --set, files, resume)."""

import json
from pathlib import Path

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
    TrainConfig,
    engine,
    read_metrics,
    train,
)
from reslearn.train.optim import make_optimizer, norm_and_bias_parameters

from .helpers import train_cfg, write_imagefolder

REGRESSION = Path(__file__).parent / "regression"
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


# ---------------------------------------------------------------- configuration
def _parse(argv):
    from reslearn.cli import build_parser, config_from_args

    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_every_flag_keeps_its_meaning():
    c = _parse(
        [
            "--model",
            "resnet56",
            "--shortcut",
            "B",
            "--zero-init-residual",
            "--data-dir",
            "D",
            "--no-download",
            "--val-split",
            "5000",
            "--normalize",
            "channel",
            "--no-augment",
            "--out",
            "O",
            "--batch-size",
            "64",
            "--lr",
            "0.05",
            "--warmup",
            "off",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--eval-every",
            "7",
            "--checkpoint-every",
            "9",
            "--amp",
            "bf16",
            "--channels-last",
            "off",
            "--compile",
            "--progress",
            "log",
            "--iterations",
            "100",
        ]
    )
    assert (c.model.name, c.model.shortcut, c.model.zero_init_residual) == ("resnet56", "B", True)
    assert (c.data.data_dir, c.data.download, c.data.val_split, c.data.normalize, c.data.augment) == (
        "D",
        False,
        5000,
        "channel",
        False,
    )
    assert (c.optim.batch_size, c.optim.lr, c.optim.warmup, c.optim.iterations) == (64, 0.05, "off", 100)
    assert (c.run.out, c.run.seed, c.run.device, c.run.eval_every, c.run.checkpoint_every) == (
        "O",
        3,
        "cpu",
        7,
        9,
    )
    assert (c.run.amp, c.run.channels_last, c.run.compile, c.run.progress) == ("bf16", False, True, "log")
    e = _parse(["--epochs", "5"])
    assert (e.optim.epochs, e.optim.iterations) == (5, None)
    assert _parse([]) == TrainConfig()  # no flag: the dataclass defaults, nothing copied


def test_every_field_is_settable_from_flags_set_and_files(tmp_path):
    from reslearn.train.config import config_fields

    assert _parse(["--set", "optim.weight_decay=5e-4"]).optim.weight_decay == 5e-4
    assert _parse(["--norm-weight-decay", "0"]).optim.norm_weight_decay == 0.0
    assert _parse(["--milestones", "0.3,0.6"]).optim.milestones == (0.3, 0.6)
    (tmp_path / "c.toml").write_text(
        '[optim]\nweight_decay = 0.0005\nepochs = 3\n[model]\nname = "resnet32"\n'
    )
    c = _parse(["--config", str(tmp_path / "c.toml"), "--set", "model.name=resnet44"])
    assert (c.optim.weight_decay, c.optim.epochs, c.optim.iterations, c.model.name) == (
        5e-4,
        3,
        None,
        "resnet44",
    )
    (tmp_path / "c.json").write_text(json.dumps({"run": {"seed": 9}}))
    assert _parse(["--config", str(tmp_path / "c.json"), "--seed", "4"]).run.seed == 4  # flags win
    from reslearn.cli import build_parser

    helptext = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in config_fields():  # one flag per field, its docstring as help
        flag = "--model" if f.key == "model.name" else "--" + f.name.replace("_", "-")
        assert flag in helptext, flag
    for bad, msg in (
        (["--set", "optim.nope=1"], "optim.nope"),
        (["--set", "lr"], "'lr'"),
        (["--set", "optim.lr=fast"], "'fast'"),
        (["--batch-size", "0"], "batch_size"),
    ):
        with pytest.raises(ValueError, match=msg):
            _parse(bad)


def test_resume_applies_safe_flags_and_refuses_the_others(tiny_data, tmp_path, capsys):
    out = tmp_path / "r"
    base = [
        "train",
        "--model",
        "cifar_resnet8",
        "--data-dir",
        str(tiny_data),
        "--no-download",
        "--batch-size",
        "32",
        "--iterations",
        "6",
        "--eval-every",
        "3",
        "--device",
        "cpu",
        "--progress",
        "log",
        "--out",
        str(out),
        "--no-tensorboard",
    ]
    assert cli_main(base) == 0
    assert '"batch_size": 32' in capsys.readouterr().out  # the resolved config is printed
    assert cli_main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    assert "--lr cannot change on --resume" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(out), "--iterations", "3"]) == 2
    assert "only lengthen" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "train",
                "--resume",
                str(out),
                "--batch-size",
                "32",
                "--iterations",
                "9",
                "--eval-every",
                "9",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    assert [r["iteration"] for r in read_metrics(out)] == [3, 6, 9]
    saved = json.loads((out / "config.json").read_text())
    assert saved["optim"]["iterations"] == 9 and saved["run"]["eval_every"] == 9
