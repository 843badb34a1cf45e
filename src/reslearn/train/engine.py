"""The training engine: build a run from its config, run intervals, evaluate, checkpoint.

    train()  ->  start_run() / resume_run()   resolve the config and the run directory
             ->  build()                       data, model, optimizer, state (nothing written yet)
             ->  loop: run_interval() -> report() -> save()      until the last iteration
             ->  finish()                      final.json

The loop does not know which data set it trains on: it asks a ``TrainData`` for batches
(reslearn.data.base). Evaluation lives in reslearn.evaluate. Only the main process
writes files; meters are summed over processes (reslearn.distributed).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..checkpoint import Checkpoint, git_commit, load_checkpoint, model_options, save_checkpoint, unwrap
from ..data.augment import Normalizer
from ..data.base import TrainData
from ..data.datasets import get_dataset
from ..data.folder import legacy_options
from ..distributed import (
    DistInfo,
    SplitBatchNorm2d,
    convert_sync_batchnorm,
    init_from_env,
    local_device,
    replace_batchnorm,
)
from ..evaluate import evaluate
from ..evaluate.evaluate import eval_batch_size
from ..files import atomic_write_text
from ..models import ModelSpec, create_model, get_model_spec
from ..rundir import CONFIG, FINAL, LAST, RunLock, check_new_run, claim, remove_run
from ..speed import SpeedSettings, ran_on, select_device
from ..threads import ThreadPolicy
from .config import TrainConfig, apply_layers, resume_config
from .faults import Interrupted, RunError, StopSignals
from .init import apply_init, check_shape, new_parameters, read_init
from .init import describe as describe_init
from .logging import MetricsLog, Progress, format_row, read_metrics
from .optim import make_optimizer
from .recipes import resolve
from .schedules import Schedule, make_schedule, schedule_state_from
from .state import TrainState
from .step import TrainStep

__all__ = ["Trainer", "build", "is_finished", "read_metrics", "train"]


# ---------------------------------------------------------------- the parts of a run
@dataclass
class Trainer:
    """A run in progress: what ``build`` made and the loop's few moving parts."""

    cfg: TrainConfig
    spec: ModelSpec
    run_dir: Path
    device: torch.device
    speed: SpeedSettings
    dist: DistInfo
    data: TrainData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: TrainStep
    state: TrainState
    total: int  # iterations of the whole run
    schedule: Schedule  # the lr at every iteration (train/schedules.py)
    eval_every: int
    ckpt_every: int
    commit: str | None
    progress: Progress
    log: MetricsLog | None = None  # main process only
    lock: RunLock | None = None  # main process only: the run folder's, held while it trains
    fingerprint: str | None = None  # of the training list (TrainDataBase.fingerprint)
    t_start: float = field(default_factory=time.perf_counter)
    lr: float = 0.0  # of the last step
    last_saved: int | None = None  # iteration of the last checkpoint written (or resumed from)
    signals: StopSignals = field(default_factory=lambda: StopSignals(enabled=False))
    threads: ThreadPolicy = field(default_factory=ThreadPolicy)  # entered by train()
    _epoch_batches: tuple[int, Any] | None = None  # (epoch, iterator) being consumed
    init: dict | None = None  # fine-tuning: where the weights came from (train/init.py)
    frozen: list[str] = field(default_factory=list)  # --freeze-to: the frozen modules

    @property
    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch()

    def wall_s(self) -> float:
        return self.state.wall_s + (time.perf_counter() - self.t_start)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, pos = divmod(self.state.iteration, self.steps_per_epoch)
        if self._epoch_batches is None or self._epoch_batches[0] != epoch:
            self._epoch_batches = (epoch, self.data.batches(epoch, pos))
        return next(self._epoch_batches[1])


def distribute(model: nn.Module, speed: SpeedSettings, device: torch.device, dist: DistInfo) -> nn.Module:
    """With several processes: the model in DistributedDataParallel (gradients averaged
    over processes in the backward pass). Memory format first: DDP's buckets must see
    the parameters as they will stay."""
    if dist.world_size == 1:
        return model
    speed.prepare_model(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def make_train_data(cfg: TrainConfig, device: torch.device, dist: DistInfo) -> TrainData:
    """The training data of the (resolved) config's data set, from its registry entry."""
    return get_dataset(cfg.data.dataset).train_data(
        cfg.data,
        recipe=cfg.optim.recipe,
        batch_size=cfg.optim.batch_size,
        seed=cfg.run.seed,
        device=device,
        dist=dist,
        eval_batch_size=eval_batch_size(cfg.optim.recipe, cfg.run.eval_batch_size),
    )


def agree_on_amp(speed: SpeedSettings, dist: DistInfo) -> SpeedSettings:
    """Several processes: bf16 only if every process's probe chose it (one precision for
    all, whatever the noise in each probe)."""
    if dist.world_size == 1:
        return speed
    votes = dist.all_reduce_sum(torch.tensor([float(speed.amp_dtype is not None)]))
    if int(votes.item()) in (0, dist.world_size):
        return speed
    return replace(speed, amp_dtype=None, reason=speed.reason + "; not every process chose bf16 -> fp32")


def start_weights(
    cfg: TrainConfig, spec: ModelSpec, model: nn.Module, data: TrainData, ckpt, device
) -> dict | None:
    """Fine-tuning: load ``--init``'s matching weights into ``model`` and keep the source's
    normalisation where it applies (same shape). Returns what loaded (None: a fresh net);
    a resumed run takes that record from its checkpoint and reads no source."""
    if ckpt is not None:
        init = ckpt.train_state.get("init")
    elif cfg.model.init:
        weights = read_init(cfg.model.init, spec)
        check_shape(weights, spec, cfg.model.shortcut, cfg.model.variant)
        init = apply_init(model, weights, list(data.classes), cfg.model.init_partial)
        mean = weights.preprocessing.get("mean")
        if mean is not None and mean.shape[-2:] in ((1, 1), data.normalizer.mean.shape[-2:]):
            data.normalizer = Normalizer(mean, weights.preprocessing.get("std")).to(device)
            init["preprocessing"] = "the source's"
        else:
            init["preprocessing"] = "fitted on this data (the source's is of another size)"
    else:
        init = None
    if cfg.optim.head_lr is not None and not (init and new_parameters(model, init)):
        raise ValueError(
            f"--head-lr {cfg.optim.head_lr:g} applies to the layers --init replaced (a new classifier); "
            f"this run has {'none' if init else 'no --init'}"
        )
    return init


def warmup_enabled(cfg: TrainConfig, spec: ModelSpec) -> bool:
    """Paper 4.2: the 110-layer net warms up at lr 0.01; "auto" does so from 110 layers on."""
    return cfg.optim.warmup == "on" or (cfg.optim.warmup == "auto" and spec.depth >= 110)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def check_batch_split(cfg: TrainConfig, dist: DistInfo) -> None:
    """The global batch splits evenly over the processes, and each share over --bn-splits."""
    if cfg.optim.batch_size % dist.world_size:
        raise ValueError(
            f"the global batch {cfg.optim.batch_size} does not split over {dist.world_size} processes: "
            f"choose a multiple of {dist.world_size}"
        )
    if (cfg.optim.batch_size // dist.world_size) % cfg.run.bn_splits:
        raise ValueError(
            f"--bn-splits {cfg.run.bn_splits} does not split a process's batch of "
            f"{cfg.optim.batch_size // dist.world_size} into equal slices"
        )


def build(cfg: TrainConfig, run_dir: Path, ckpt: Checkpoint | None = None) -> Trainer:
    """Everything a run needs, from its config (and checkpoint when resuming). Writes nothing."""
    spec = get_model_spec(cfg.model.name)
    device = select_device(cfg.run.device)
    dist = init_from_env(device)  # under torchrun: join the process group
    device = local_device(device)
    check_batch_split(cfg, dist)
    speed = agree_on_amp(SpeedSettings.from_run(cfg.run, device), dist)
    seed_everything(cfg.run.seed)
    data = make_train_data(cfg, device, dist)  # before any file is written: bad data leaves nothing
    model = create_model(spec.name, **model_options(cfg.to_dict(), len(data.classes)))
    init = start_weights(cfg, spec, model, data, ckpt, device)
    frozen = model.freeze_to(cfg.model.freeze_to)
    model = model.to(device=device, dtype=speed.dtype)
    if cfg.run.sync_bn and dist.world_size > 1:
        model = convert_sync_batchnorm(model, device)
    if cfg.run.bn_splits > 1:  # the paper's per-GPU BN on one process
        model = replace_batchnorm(model, partial(SplitBatchNorm2d, splits=cfg.run.bn_splits), device)
    optimizer = make_optimizer(model, cfg.optim, device, new_parameters(model, init) if init else set())
    ipe = data.steps_per_epoch()
    total = cfg.optim.iterations if cfg.optim.epochs is None else cfg.optim.epochs * ipe
    eval_every = cfg.run.eval_every or ipe
    state = TrainState()
    schedule = make_schedule(cfg.optim, total, ipe, warm_up=warmup_enabled(cfg, spec))
    if ckpt is not None:
        schedule.load_state_dict(schedule_state_from(ckpt.train_state, schedule))
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        data.normalizer = Normalizer.from_state(ckpt.preprocessing).to(device)
        data.load_state_dict(state.load_state_dict(ckpt.train_state))
    model = distribute(model, speed, device, dist)
    return Trainer(
        cfg=cfg,
        spec=spec,
        run_dir=run_dir,
        device=device,
        speed=speed,
        dist=dist,
        data=data,
        model=model,
        optimizer=optimizer,
        step=TrainStep(
            model, optimizer, speed, device, cfg.run.nan_policy == "skip-batch", dist, cfg.run.bn_splits
        ),
        last_saved=ckpt.iteration if ckpt is not None else None,
        state=state,
        total=total,
        schedule=schedule,
        eval_every=eval_every,
        ckpt_every=cfg.run.checkpoint_every or eval_every,
        commit=git_commit() if dist.is_main else None,
        progress=Progress(cfg.run.progress, total, state.iteration, dist.is_main),
        init=init,
        frozen=frozen,
    )


# ---------------------------------------------------------------- the loop
def run_interval(tr: Trainer, until: int) -> None:
    """Train from ``tr.state.iteration`` up to iteration ``until``; add the interval to the
    meters. The device is synchronised once, at the end (and once per warm-up window)."""
    st, dev = tr.state, tr.device
    # float64: sums of float32 losses stay exact, so a resumed run matches bit for bit.
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    err_sum = torch.zeros((), device=dev, dtype=torch.long)
    n_local, t0, start = 0, time.perf_counter(), st.iteration
    # The first iteration with a non-finite loss (policy "stop"), counted on the device.
    never = torch.tensor(2**62, device=dev)
    first_bad, it_dev = never.clone(), torch.tensor(st.iteration, device=dev)
    while st.iteration < until and not tr.signals.stop_now():
        tr.threads.update()  # an auto job follows the other jobs on the machine (a clock read)
        x, y = tr.next_batch()
        tr.lr = tr.schedule.lr(st.iteration)
        for g in tr.optimizer.param_groups:
            g["lr"] = tr.lr * g["lr_scale"] if "lr_scale" in g else tr.lr  # --head-lr: its own scale
        loss, errs = tr.step(x, y)
        st.iteration += 1
        if tr.step.last_skipped:  # --nan-policy skip-batch: no update, not counted
            st.meters.skipped += 1
            continue
        it_dev += 1
        first_bad = torch.minimum(first_bad, torch.where(torch.isfinite(loss), never, it_dev))
        loss_sum += loss
        err_sum += errs
        n_local += len(y)
        note = tr.schedule.observe_step(errs, len(y), st.iteration, tr.dist.all_reduce_sum)
        if note:
            tr.progress.log(note)
    if int(first_bad.item()) != int(never):
        raise non_finite(tr, int(first_bad.item()))
    n = torch.tensor(float(n_local), dtype=torch.float64, device=dev)
    loss, err, n = tr.dist.all_reduce_sum(torch.stack([loss_sum, err_sum.double(), n])).tolist()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    steps = st.iteration - start
    st.meters.add(loss / tr.dist.world_size, int(err), int(n), steps, time.perf_counter() - t0)
    tr.progress.update(steps)


def report(tr: Trainer) -> dict:
    """Evaluate, write one metrics row (main process), reset the meters."""
    st, final = tr.state, tr.state.iteration == tr.total
    summary = st.meters.summary()
    row = {
        "iteration": st.iteration,
        "epoch": round(st.iteration / tr.steps_per_epoch, 4),
        "lr": tr.lr,
        "loss": summary["loss"],
        "train_err": summary["train_err"],
    }
    sets = tr.data.eval_sets()
    if "val" in sets:
        row["val_err"] = top1_err(tr, sets["val"])
    if "test" in sets:  # with a validation split the test set stays untouched until the end
        row["test_err"] = top1_err(tr, sets["test"]) if "val" not in sets or final else None
    row["images_per_s"] = summary["images_per_s"]
    row["wall_s"] = tr.wall_s()
    row["ran_on"] = ran_on(tr.device, tr.speed)  # this row's stretch: which machine, how
    if tr.cfg.data.skip_bad_images:
        row["skipped_images"] = getattr(tr.data, "skipped", 0)
    if tr.cfg.run.nan_policy == "skip-batch":
        row["skipped_batches"] = st.meters.skipped
    held_out = row["val_err"] if "val_err" in row else row.get("test_err")
    note = tr.schedule.observe_eval(held_out, st.iteration) if held_out is not None else None
    if note:
        tr.progress.log(note)
    if tr.log is not None:
        tr.log.write(row)
    tr.progress.log(format_row(row, tr.total))
    st.meters = type(st.meters)()
    return row


def top1_err(tr: Trainer, split) -> float:
    model = unwrap(tr.model)
    tr.dist.broadcast_buffers(model)  # every process scores with the model rank 0 saves
    res = evaluate(model, split, tr.data.normalizer, speed=tr.speed.for_evaluation(), dist=tr.dist)
    return res["top1_err"]


def make_checkpoint(tr: Trainer) -> Checkpoint:
    state = tr.state.state_dict(tr.data.state_dict())
    state["wall_s"] = tr.wall_s()
    state["schedule"] = tr.schedule.state_dict()
    if tr.init is not None:
        state["init"] = tr.init  # fine-tuning: what loaded from where (and which params are new)
    return Checkpoint(
        model=unwrap(tr.model).state_dict(),
        classes=list(tr.data.classes),
        preprocessing=tr.data.normalizer.state_dict(),
        config=tr.cfg.to_dict(),
        train_state=state,
        optimizer=tr.optimizer.state_dict(),
        provenance={
            "version": __version__,
            "git_commit": tr.commit,
            "data_source": tr.data.source,
            "device": str(tr.device),
            "schedule": tr.schedule.describe(),
            "init": tr.init["source"] if tr.init else None,
            "total": tr.total,
            "data_fingerprint": tr.fingerprint,
        },
    )


def save(tr: Trainer) -> None:
    """RUN_DIR/last.pt (the one it replaces kept as prev.pt). A failed write stops the run."""
    if tr.dist.is_main:
        path = tr.run_dir / LAST
        try:
            save_checkpoint(path, make_checkpoint(tr))
        except OSError as e:
            kept = (
                f"the previous checkpoint {path} (iteration {tr.last_saved}) is intact"
                if tr.last_saved
                else ("no checkpoint was written yet")
            )
            raise RunError(
                f"could not write the checkpoint {path}: {e.strerror or e}; {kept}. Training stopped: "
                f"free space or fix the permissions of {tr.run_dir}, then continue with --resume {tr.run_dir}"
            ) from e
    tr.last_saved = tr.state.iteration


def non_finite(tr: Trainer, iteration: int) -> RunError:
    """``iteration``: 1-based, the first step whose loss was NaN or inf."""
    lr = tr.schedule.lr(iteration - 1)
    where = f"{tr.run_dir / LAST} (iteration {tr.last_saved})" if tr.last_saved else "none yet"
    return RunError(
        f"the training loss became non-finite (NaN or inf) at iteration {iteration}, lr {lr:g}; nothing "
        f"after it was saved. The last good checkpoint: {where}. Lower --lr, or skip such batches with "
        f"--nan-policy skip-batch"
    )


def finish(tr: Trainer) -> None:
    """RUN_DIR/final.json: the run's result and provenance."""
    if not tr.dist.is_main:
        return
    rows = read_metrics(tr.run_dir)
    final = {
        "iteration": tr.state.iteration,
        "test_err": rows[-1].get("test_err"),
        "val_err": rows[-1].get("val_err"),
        "train_err": rows[-1]["train_err"],
        "wall_s": rows[-1]["wall_s"],
        "device": str(tr.device),
        "speed": tr.speed.describe(),
        "data_source": tr.data.source,
        "data_format": tr.data.format,
        "version": __version__,
        "git_commit": tr.commit,
    }
    atomic_write_text(tr.run_dir / FINAL, json.dumps(final, indent=2) + "\n")


def next_boundary(tr: Trainer, stop_at: int) -> int:
    """The next iteration that ends an interval: an evaluation, a checkpoint or the stop."""
    it = tr.state.iteration
    nxt = [(it // k + 1) * k for k in (tr.eval_every, tr.ckpt_every)]
    return min(*nxt, tr.total, stop_at)


def loop(tr: Trainer, stop_at: int) -> None:
    while tr.state.iteration < stop_at:
        run_interval(tr, next_boundary(tr, stop_at))
        it = tr.state.iteration
        # An interval that reached its boundary is evaluated even when a signal came during
        # its last step: a resumed run starts after the boundary and would never write that row.
        if it % tr.eval_every == 0 or it == tr.total:
            report(tr)
        signum = tr.signals.settle()  # the same answer in every process
        if signum is not None and it < stop_at:
            save(tr)  # the current iteration, between evaluations if need be
            raise Interrupted(signum, it, tr.run_dir)
        if it % tr.ckpt_every == 0 or it == tr.total or it == stop_at:
            save(tr)


# ---------------------------------------------------------------- entry point
def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.model.name}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_run(cfg: TrainConfig, overwrite: bool = False) -> tuple[TrainConfig, Path]:
    """A new run: validate the model, choose the run directory, refuse one holding a run
    (unless ``overwrite``: then its files go, once the new run is built)."""
    spec = get_model_spec(cfg.model.name)
    cfg = resolve(cfg, spec)
    if not spec.residual and cfg.model.shortcut is not None:
        raise ValueError(
            f"{spec.name} is a plain net and has no shortcuts; got shortcut={cfg.model.shortcut!r}"
        )
    run_dir = Path(cfg.run.out) if cfg.run.out else default_run_dir(cfg)
    check_new_run(run_dir, overwrite)
    check_not_inside(run_dir, cfg)
    check_batch_fits(cfg)
    if cfg.data.class_index is not None and cfg.data.dataset != "imagenet":
        raise ValueError(
            f"--class-index applies to ImageNet-layout data read as 'imagenet'; {cfg.data.data_dir!r} "
            f"is read as {cfg.data.dataset!r} (its classes are its own): drop --class-index, or give "
            f"--dataset imagenet"
        )
    return cfg.replace({"run.out": str(run_dir), **absolute_paths(cfg)}), run_dir


def check_same_data(tr: Trainer, ckpt: Checkpoint | None, go_on: bool) -> str | None:
    """On resume: the training list must be the one the checkpoint trained on (its
    fingerprint), or the run would not continue the same experiment; ``go_on``
    (--data-changed) accepts the change and returns the line saying so. A checkpoint from
    before fingerprints, or data without one, is not checked."""
    saved = ckpt.provenance.get("data_fingerprint") if ckpt is not None else None
    if not saved or not tr.fingerprint or saved == tr.fingerprint:
        return None
    what = (
        f"the training data of {str(tr.run_dir)!r} changed since its checkpoint (images added, "
        f"removed or relabelled: fingerprint {saved} then, {tr.fingerprint} now)"
    )
    if not go_on:
        raise ValueError(
            f"{what}; resuming would not continue the same experiment: restore the data, or add "
            f"--data-changed to go on with it"
        )
    return f"{what}; going on with it (--data-changed)"


def check_batch_fits(cfg: TrainConfig) -> None:
    """Refuse, before allocating, an image size whose input batch alone (uint8 and float32
    copies, B x 3 x S x S x 5 bytes) exceeds this machine's memory: the net's activations
    need many times more, so such a run could only die (issue 32)."""
    s, b = cfg.data.image_size, cfg.optim.batch_size
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not Linux
        return
    if s and b and b * 3 * s * s * 5 > total:
        raise ValueError(
            f"--image-size {s}: one batch of {b} such images takes {b * 3 * s * s * 5 / 2**30:,.0f} GiB "
            f"before the net's activations, over this machine's {total / 2**30:,.0f} GiB; "
            f"choose a smaller --image-size or --batch-size"
        )


def check_not_inside(run_dir: Path, cfg: TrainConfig) -> None:
    """A run folder is not inside its own data (the run's files would become training
    images, or a changed data set) and does not hold the net it fine-tunes from (--overwrite
    would delete the source, and a resumed run would read its own output)."""
    out = run_dir.expanduser().resolve()
    data = Path(cfg.data.data_dir).expanduser().resolve()
    if out == data or data in out.parents:
        raise ValueError(
            f"--out {str(run_dir)!r} is inside the data folder {cfg.data.data_dir!r}; choose another"
        )
    init = cfg.model.init
    if init and Path(init).expanduser().exists():
        src = Path(init).expanduser().resolve()
        if src == out or out in src.parents or src in out.parents:
            raise ValueError(
                f"--out {str(run_dir)!r} and --init {init!r} are the same run; a fine-tuned run goes "
                f"into a folder of its own (choose another --out)"
            )


def absolute_paths(cfg: TrainConfig) -> dict[str, str]:
    """The data paths as absolute paths: a run resumed from another folder reads the same
    files (a relative path would point elsewhere, or start a download there)."""
    d = cfg.data
    out = {"data.data_dir": os.path.abspath(Path(d.data_dir).expanduser())}
    if d.class_index is not None:
        out["data.class_index"] = os.path.abspath(Path(d.class_index).expanduser())
        if not Path(out["data.class_index"]).is_file():
            raise ValueError(f"--class-index {d.class_index!r}: no such file")
    return out


def resume_run(resume: str | os.PathLike, layers: list[dict], flags: dict | None):
    ckpt = load_checkpoint(resume)
    run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).parent
    saved = TrainConfig.from_dict({**ckpt.config, "data": legacy_options(ckpt.config.get("data") or {})})
    # A config saved before a recipe field existed gets that field's recipe value.
    saved = resolve(saved, get_model_spec(saved.model.name))
    cfg = resume_config(saved, layers, flags)
    if not Path(cfg.data.data_dir).expanduser().exists():
        raise ValueError(
            f"the data of {str(run_dir)!r} is not at {cfg.data.data_dir!r} any more; if it moved, "
            f"resume with --data-dir NEW_PLACE (the same images)"
        )
    return cfg.replace({"run.out": str(run_dir), **absolute_paths(cfg)}), run_dir, ckpt


def log_start(tr: Trainer, ckpt: Checkpoint | None, changed: str | None) -> None:
    """The run's first lines: what trains on what, the config, what fine-tuning loaded."""
    it = tr.state.iteration
    tr.progress.log(header(tr) + (f", resumed at iteration {it}" if ckpt is not None else ""))
    tr.progress.log("config: " + json.dumps(tr.cfg.to_dict()))
    if changed:
        tr.progress.log(changed)
    if tr.init is not None and ckpt is None:
        for line in describe_init(tr.init, tr.frozen):
            tr.progress.log(line)


def run_to_end(tr: Trainer, stop_after: int | None) -> None:
    """The loop until the run's end (final.json) or ``stop_after`` or a signal."""
    try:
        with StopSignals(world_size=tr.dist.world_size) as tr.signals:
            loop(tr, tr.total if stop_after is None else min(tr.total, stop_after))
    finally:
        tr.progress.close()
        if tr.log is not None:
            tr.log.close()
    if tr.state.iteration == tr.total:
        finish(tr)


def train(
    cfg: TrainConfig | None = None,
    resume: str | os.PathLike | None = None,
    *,
    stop_after: int | None = None,
    overrides: dict[str, Any] | list[dict[str, Any]] | None = None,
    flag_names: dict[str, str] | None = None,
    overwrite: bool = False,
    data_changed: bool = False,
) -> Path:
    """Train with ``cfg`` into its run directory, or continue the run at ``resume``.

    ``overrides``: {"section.field": value}, or a list of such layers applied in turn
    (config file, --set, flags). On a resumed run they apply where safe
    (config.RESUME_SAFE) and are refused otherwise, named by ``flag_names``. ``stop_after``: stop (with a
    checkpoint) after this many iterations of the run, as an interruption would.
    ``data_changed``: resume although the training list changed since the checkpoint.
    Returns the run directory.
    """
    layers = [overrides] if isinstance(overrides, dict) else list(overrides or [])
    if resume is not None:
        if cfg is not None:
            raise ValueError("give a config or a run to resume, not both")
        cfg, run_dir, ckpt = resume_run(resume, layers, flag_names)
    else:
        cfg, run_dir = start_run(apply_layers(cfg or TrainConfig(), layers), overwrite)
        ckpt = None
    with ThreadPolicy(cfg.run.threads) as threads:  # before build: loading uses them too
        tr = build(cfg, run_dir, ckpt)
        tr.threads = threads
        tr.fingerprint = tr.data.fingerprint()
        log_start(tr, ckpt, check_same_data(tr, ckpt, data_changed))
        if tr.dist.is_main:
            open_run_dir(tr, overwrite, resumed=ckpt is not None)  # takes the folder's lock
        try:
            run_to_end(tr, stop_after)
        finally:
            if tr.lock is not None:
                tr.lock.release()
        return run_dir


def open_run_dir(tr: Trainer, overwrite: bool, resumed: bool) -> None:
    """The main process takes the run folder: its lock (held until the process ends), a
    second look under the lock at what the folder holds (two new runs started together:
    the second finds the first's), then config.json and the metrics log (appended on resume)."""
    run_dir, cfg = tr.run_dir, tr.cfg
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tr.lock = RunLock(run_dir).acquire()
    except OSError as e:
        raise RunError(f"cannot write into the run directory {run_dir}: {e.strerror or e}") from e
    try:
        if not resumed:
            check_new_run(run_dir, overwrite)
            if overwrite:
                remove_run(run_dir)
        claim(run_dir)
        atomic_write_text(run_dir / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")
        tr.log = MetricsLog(run_dir, tr.state.iteration if resumed else None, cfg.run.tensorboard)
    except BaseException as e:
        tr.lock.release()  # the run never started: the folder is free again
        if isinstance(e, OSError):
            raise RunError(f"cannot write into the run directory {run_dir}: {e.strerror or e}") from e
        raise


def header(tr: Trainer) -> str:
    d, ipe = tr.data, tr.steps_per_epoch
    evals = ", ".join(f"{len(s)} {k}" for k, s in d.eval_sets().items())
    return (
        f"reslearn {__version__}: {tr.spec.name} on {tr.device} ({tr.speed.describe()}; "
        f"{tr.threads.describe()}{'; ' + tr.speed.reason if tr.speed.reason else ''}), "
        f"{tr.total} iterations of batch {tr.cfg.optim.batch_size} ({tr.total / ipe:.1f} epochs), "
        f"{tr.schedule.describe()}, data {d.source} ({d.num_train} train, {evals})"
    )


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / FINAL).is_file()
