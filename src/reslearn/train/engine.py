"""The training engine: the paper's CIFAR recipe on any device, resumable, observable.

Data lives on the training device as uint8; augmentation is batched tensor ops there;
the loop never synchronises with the host except at evaluations (and, during the
110-layer warm-up, once per ``warmup_check_every`` iterations).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..data import Normalizer, fit_normalizer, load_cifar10
from ..data.augment import random_crop_flip
from ..models import create_model
from .checkpoint import git_commit, load_checkpoint, save_checkpoint, unwrap
from .config import TrainConfig
from .schedules import lr_at, milestone_iterations


# ---------------------------------------------------------------- device and speed
def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    return dev


def cpu_has_amx_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (Intel AMX), where bf16 autocast pays
    (about 1.6x over fp32 channels_last for ResNet-20 here; docs/performance.md).
    Without AMX, bf16 convolutions are emulated or slower, so fp32 stays the default."""
    init_amx = getattr(torch._C._cpu, "_init_amx", None)  # asks the OS for AMX state
    if init_amx is not None:
        try:
            if init_amx():
                return True
        except RuntimeError:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


@dataclass(frozen=True)
class SpeedSettings:
    """How a step runs. ``baseline()`` is eager NCHW fp32; ``fast()`` the engine default."""

    channels_last: bool = False
    amp_dtype: torch.dtype | None = None
    compile: bool = False

    @staticmethod
    def baseline() -> SpeedSettings:
        return SpeedSettings()

    @staticmethod
    def fast(device: torch.device) -> SpeedSettings:
        # Measured in docs/performance.md: channels_last pays on CPU and GPU; bf16
        # autocast pays on CUDA and on CPUs with AMX.
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_amx_bf16())
        return SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16 if bf16 else None)

    @staticmethod
    def from_run(run, device: torch.device) -> SpeedSettings:
        fast = SpeedSettings.fast(device)
        cl = fast.channels_last if run.channels_last is None else run.channels_last
        amp = {"auto": fast.amp_dtype, "bf16": torch.bfloat16, "off": None}[run.amp]
        return SpeedSettings(channels_last=cl, amp_dtype=amp, compile=run.compile)

    def describe(self) -> str:
        amp = "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"
        fmt = "channels_last" if self.channels_last else "NCHW"
        return f"{fmt}, {amp}{', compiled' if self.compile else ''}"

    def autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class TrainStep:
    """One SGD step: forward, cross-entropy, backward, update. Returns device tensors
    (loss, number of misclassified samples) so that the caller never waits on the host."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        speed: SpeedSettings,
        device: torch.device,
    ) -> None:
        self.raw = model
        self.speed = speed
        self.device = device
        if speed.channels_last:
            model.to(memory_format=torch.channels_last)
        if speed.compile:
            # On CUDA, "reduce-overhead" replays CUDA graphs: a ResNet-56 step is hundreds of
            # small kernels, so launch overhead, not arithmetic, bounds it at batch 128.
            mode = "reduce-overhead" if device.type == "cuda" else None
            self.model = torch.compile(model, mode=mode)
        else:
            self.model = model
        self.optimizer = optimizer

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.speed.prepare_input(x)
        with self.speed.autocast(self.device):
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) != y).sum()


def make_optimizer(model: nn.Module, cfg, device: torch.device) -> torch.optim.SGD:
    """SGD with momentum 0.9 and weight decay 1e-4 on every parameter (paper Section 3.4)."""
    kw = {}
    if device.type == "cuda":
        kw["fused"] = True  # one kernel for the update instead of a few per parameter group
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **kw
    )


# ---------------------------------------------------------------- evaluation
@torch.inference_mode()
def evaluate(
    model: nn.Module,
    normalizer: Normalizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 1000,
    speed: SpeedSettings = SpeedSettings(),
    device: torch.device | None = None,
) -> dict:
    """Single-view (the original 32x32 image) top-1/top-5 error in percent, mean loss."""
    device = device or x.device
    was_training = model.training
    model.eval()
    top1 = top5 = 0
    loss = 0.0
    try:
        for i in range(0, len(x), batch_size):
            xb = speed.prepare_input(normalizer(x[i : i + batch_size].to(device)))
            yb = y[i : i + batch_size].to(device)
            with speed.autocast(device):
                logits = model(xb)
            logits = logits.float()
            loss += F.cross_entropy(logits, yb, reduction="sum").item()
            k = min(5, logits.shape[1])
            topk = logits.topk(k, 1).indices
            top1 += (topk[:, 0] != yb).sum().item()
            top5 += (~(topk == yb[:, None]).any(1)).sum().item()
    finally:
        model.train(was_training)
    n = len(x)
    return {
        "top1_err": 100.0 * top1 / n,
        "top5_err": 100.0 * top5 / n,
        "loss": loss / n,
        "images": n,
    }


# ---------------------------------------------------------------- data
@dataclass
class Splits:
    train_x: torch.Tensor  # (N, 3, 32, 32) uint8 on the device
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    classes: tuple[str, ...]
    source: str
    format: str


def make_splits(cfg: TrainConfig, device: torch.device) -> Splits:
    arrays = load_cifar10(cfg.data.data_dir, download=cfg.data.download)
    tx, ty = arrays.train_x, arrays.train_y
    vx = vy = None
    k = cfg.data.val_split
    if k:
        if k >= len(tx):
            raise ValueError(f"val_split={k} leaves no training images (train split has {len(tx)})")
        # The paper's 45k/5k split; deterministic in the seed.
        perm = torch.randperm(len(tx), generator=torch.Generator().manual_seed(cfg.run.seed))
        vx, vy = tx[perm[:k]], ty[perm[:k]]
        tx, ty = tx[perm[k:]], ty[perm[k:]]
    if len(tx) < cfg.optim.batch_size:
        raise ValueError(f"batch_size={cfg.optim.batch_size} exceeds the {len(tx)} training images")
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Splits(
        to(tx),
        to(ty),
        to(arrays.test_x),
        to(arrays.test_y),
        to(vx),
        to(vy),
        arrays.classes,
        arrays.source,
        arrays.format,
    )


def epoch_permutation(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only, so resumable."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


# ---------------------------------------------------------------- logging
class MetricsLog:
    """RUN_DIR/metrics.jsonl (one JSON object per evaluation) and TensorBoard if present."""

    def __init__(self, run_dir: Path, resume_iteration: int | None, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        if resume_iteration is not None and self.path.exists():
            # Drop lines written after the checkpoint we resume from: they are re-made.
            keep = [
                ln
                for ln in self.path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["iteration"] <= resume_iteration
            ]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        elif self.path.exists():
            self.path.unlink()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception:  # tensorboard not installed: jsonl only
                self.tb = None

    def write(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self.tb.add_scalar(k, v, row["iteration"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    p = Path(run_dir) / "metrics.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.exists() else []


# ---------------------------------------------------------------- the loop
def _rng_state(aug_gen: torch.Generator) -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "augment": aug_gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, aug_gen: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.model.name}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def _log(msg: str) -> None:
    print(msg, flush=True)


def train(
    cfg: TrainConfig | None = None,
    resume: str | os.PathLike | None = None,
    *,
    stop_after: int | None = None,
) -> Path:
    """Train with ``cfg`` into its run directory, or continue the run at ``resume``.

    ``stop_after``: stop (with a checkpoint) after this many iterations of the run, as an
    interruption would; used to test that resuming reproduces an uninterrupted run.
    Returns the run directory.
    """
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        cfg = TrainConfig.from_dict(ckpt["config"])
        run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    else:
        cfg = cfg or TrainConfig()
        # Validate the model before anything is written (a bad name leaves no run dir).
        create_model(
            cfg.model.name,
            shortcut=cfg.model.shortcut,
            variant=cfg.model.variant,
            zero_init_residual=cfg.model.zero_init_residual,
        )
        run_dir = Path(cfg.run.out) if cfg.run.out else default_run_dir(cfg)
        if (run_dir / "last.pt").exists():
            raise ValueError(
                f"{str(run_dir)!r} already holds a run (last.pt); continue it with "
                f"--resume {run_dir} or choose another --out (nothing is overwritten)"
            )
        cfg.run.out = str(run_dir)
    device = select_device(cfg.run.device)
    speed = SpeedSettings.from_run(cfg.run, device)
    torch.manual_seed(cfg.run.seed)
    random.seed(cfg.run.seed)
    np.random.seed(cfg.run.seed % 2**32)

    data = make_splits(cfg, device)  # before any file is written: missing data leaves nothing
    run_dir.mkdir(parents=True, exist_ok=True)
    n_train, bs = len(data.train_x), cfg.optim.batch_size
    ipe = n_train // bs  # iterations per epoch; the last partial batch is dropped
    total = cfg.optim.iterations if cfg.optim.epochs is None else cfg.optim.epochs * ipe
    milestones = milestone_iterations(total, cfg.optim.milestones)
    eval_every = cfg.run.eval_every or ipe
    ckpt_every = cfg.run.checkpoint_every or eval_every
    warmup = cfg.optim.warmup == "on" or (cfg.optim.warmup == "auto" and cfg.model.depth() >= 110)

    model = create_model(
        cfg.model.name,
        num_classes=len(data.classes),
        shortcut=cfg.model.shortcut,
        variant=cfg.model.variant,
        zero_init_residual=cfg.model.zero_init_residual,
    )
    model.to(device)
    normalizer = fit_normalizer(data.train_x.cpu(), cfg.data.normalize).to(device)
    optimizer = make_optimizer(model, cfg.optim, device)
    step = TrainStep(model, optimizer, speed, device)
    # Reported errors are measured in fp32 (bf16 only speeds up training steps).
    eval_speed = SpeedSettings(channels_last=speed.channels_last)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.run.seed + 12345)
    commit = git_commit()  # once per run: the code that produced every number of it

    it = 0
    wall_offset = 0.0
    warming_up = warmup
    acc = {"loss": 0.0, "err": 0, "n": 0, "steps": 0, "train_time": 0.0}
    if ckpt is not None:
        unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        normalizer.load_state_dict(ckpt["normalizer"])
        it = ckpt["iteration"]
        wall_offset = ckpt["wall_s"]
        warming_up = ckpt["schedule"]["warming_up"]
        acc = dict(ckpt["accum"])
        _set_rng_state(ckpt["rng"], aug_gen)

    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    log = MetricsLog(run_dir, it if ckpt is not None else None, cfg.run.tensorboard)
    header = (
        f"reslearn {__version__}: {cfg.model.name} on {device} ({speed.describe()}), "
        f"{total} iterations of batch {bs} ({total / ipe:.1f} epochs), milestones {milestones}, "
        f"data {data.source} ({n_train} train"
        + (f", {len(data.val_x)} val" if data.val_x is not None else "")
        + f", {len(data.test_x)} test)"
    )
    show_bar = cfg.run.progress == "bar" or (cfg.run.progress == "auto" and sys.stderr.isatty())
    if cfg.run.progress != "none":
        _log(header + (f", resumed at iteration {it}" if ckpt is not None else ""))
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=it, unit="it", dynamic_ncols=True)

    def checkpoint() -> None:
        save_checkpoint(
            run_dir / "last.pt",
            {
                "model": unwrap(model).state_dict(),
                "model_name": cfg.model.name,
                "model_kwargs": {
                    "num_classes": len(data.classes),
                    "shortcut": cfg.model.shortcut,
                    "variant": cfg.model.variant,
                },
                "classes": list(data.classes),
                "normalizer": normalizer.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": {"warming_up": warming_up, "milestones": milestones, "total": total},
                "iteration": it,
                "rng": _rng_state(aug_gen),
                "accum": acc,
                "wall_s": wall_offset + (time.perf_counter() - t_start),
                "config": cfg.to_dict(),
                "version": __version__,
                "git_commit": commit,
                "data_source": data.source,
            },
        )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def top1_err(x: torch.Tensor, y: torch.Tensor) -> float:
        res = evaluate(model, normalizer, x, y, batch_size=cfg.run.eval_batch_size, speed=eval_speed)
        return res["top1_err"]

    t_start = time.perf_counter()
    # float64: sums of float32 losses stay exact, so a resumed run matches bit for bit.
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    err_sum = torch.zeros((), device=device, dtype=torch.long)
    win_err = torch.zeros((), device=device, dtype=torch.long)
    win_n = 0
    perm, perm_epoch = None, -1
    stop_at = total if stop_after is None else min(total, stop_after)
    t_interval = time.perf_counter()
    while it < stop_at:
        epoch, pos = divmod(it, ipe)
        if epoch != perm_epoch:
            perm, perm_epoch = epoch_permutation(n_train, cfg.run.seed, epoch, device), epoch
        idx = perm[pos * bs : (pos + 1) * bs]
        xb = data.train_x[idx]  # (B, 3, 32, 32) uint8
        if cfg.data.augment:
            # Paper 4.2: pad 4, random 32x32 crop, random flip. Padding is with zero
            # (black) pixels, before the mean image is subtracted, as on raw images.
            xb = random_crop_flip(xb, pad=4, generator=aug_gen)
        xb = normalizer(xb)
        lr = lr_at(
            it,
            base_lr=cfg.optim.lr,
            milestones=milestones,
            warming_up=warming_up,
            warmup_lr=cfg.optim.warmup_lr,
        )
        for g in optimizer.param_groups:
            g["lr"] = lr
        loss, errs = step(xb, data.train_y[idx])
        loss_sum += loss
        err_sum += errs
        it += 1
        acc["n"] += bs
        acc["steps"] += 1
        if bar is not None:
            bar.update(1)
        if warming_up:
            win_err += errs
            win_n += bs
            if win_n >= cfg.optim.warmup_check_every * bs:
                if 100.0 * win_err.item() / win_n < cfg.optim.warmup_until_err:
                    warming_up = False
                    if cfg.run.progress != "none":
                        _log(
                            f"warm-up done at iteration {it}: training error below "
                            f"{cfg.optim.warmup_until_err}%, lr back to {cfg.optim.lr}"
                        )
                win_err.zero_()
                win_n = 0
        do_eval = it % eval_every == 0 or it == total
        do_ckpt = it % ckpt_every == 0 or it == total or it == stop_at
        if do_eval or do_ckpt:
            acc["loss"] += loss_sum.item()
            acc["err"] += int(err_sum.item())
            sync()
            acc["train_time"] += time.perf_counter() - t_interval
            loss_sum.zero_()
            err_sum.zero_()
        if do_eval:
            final = it == total
            row = {
                "iteration": it,
                "epoch": round(it / ipe, 4),
                "lr": lr,
                "loss": acc["loss"] / max(1, acc["steps"]),
                "train_err": 100.0 * acc["err"] / max(1, acc["n"]),
            }
            if data.val_x is not None:
                row["val_err"] = top1_err(data.val_x, data.val_y)
            # With a validation split the test set stays untouched until the end.
            use_test = data.val_x is None or final
            row["test_err"] = top1_err(data.test_x, data.test_y) if use_test else None
            row["images_per_s"] = acc["n"] / max(acc["train_time"], 1e-9)
            row["wall_s"] = wall_offset + (time.perf_counter() - t_start)
            log.write(row)
            acc = {"loss": 0.0, "err": 0, "n": 0, "steps": 0, "train_time": 0.0}
            if cfg.run.progress != "none":
                msg = (
                    f"it {it}/{total} ep {row['epoch']:.1f} lr {lr:g} loss {row['loss']:.4f} "
                    f"train_err {row['train_err']:.2f}%"
                    + (f" val_err {row['val_err']:.2f}%" if "val_err" in row else "")
                    + (f" test_err {row['test_err']:.2f}%" if row["test_err"] is not None else "")
                    + f" {row['images_per_s']:.0f} img/s"
                )
                if bar is not None:
                    bar.write(msg)
                else:
                    _log(msg)
        if do_ckpt:
            checkpoint()
        if do_eval or do_ckpt:
            t_interval = time.perf_counter()
    if bar is not None:
        bar.close()
    log.close()
    if it == total:
        rows = read_metrics(run_dir)
        final = {
            "iteration": it,
            "test_err": rows[-1]["test_err"],
            "train_err": rows[-1]["train_err"],
            "wall_s": rows[-1]["wall_s"],
            "device": str(device),
            "speed": speed.describe(),
            "data_source": data.source,
            "data_format": data.format,
            "version": __version__,
            "git_commit": commit,
        }
        (run_dir / "final.json").write_text(json.dumps(final, indent=2) + "\n")
    return run_dir


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / "final.json").is_file()


def load_for_inference(path: str | Path, device: torch.device | None = None):
    """(model in eval mode, normalizer, checkpoint dict) from a checkpoint or run dir."""
    ckpt = load_checkpoint(path)
    device = device or torch.device("cpu")
    kw = {k: v for k, v in ckpt["model_kwargs"].items() if v is not None}
    model = create_model(ckpt["model_name"], **kw)
    model.load_state_dict(ckpt["model"])
    mean = ckpt["normalizer"]["mean"]
    normalizer = Normalizer(mean, ckpt["normalizer"]["std"])
    return model.to(device).eval(), normalizer.to(device), ckpt


def checkpoint_data(ckpt: dict, data_dir: str | None = None):
    """The data set a checkpoint was trained on (or ``data_dir``), checked against the
    model's number of classes, for evaluation and layer responses."""
    cfg = ckpt["config"]["data"]
    where = data_dir or cfg["data_dir"]
    data = load_cifar10(where, download=cfg["download"])
    n = ckpt["model_kwargs"]["num_classes"]
    if len(data.classes) != n:
        raise ValueError(f"{where!r} has {len(data.classes)} classes, the model {n}")
    return data
