"""``reslearn reproduce STUDY``: the paper's studies as data, and the runner that trains
them.

A study is a few lines in :data:`STUDIES`: its nets, seeds, the config settings it lays
beneath the command line's (``--set``, ``--config`` and every ``train`` flag work on top),
optional arms (named variants of the settings, each trained for every net and seed and
compared in the report) and whether the report needs the Figure-7 responses. Runs go to
``DIR/<model>[-<arm>]-s<seed>/``: a finished run (final.json) is skipped, an interrupted
one continues exactly from its checkpoint, and a run another process is training is left
to it, so several processes (``--parallel N``) share one study. Then the report is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..data.datasets import get_dataset
from ..files import atomic_write_text
from ..models import get_model_spec
from ..registry import Registry
from ..rundir import LAST, RunBusy, RunExists, RunLock
from ..speed import select_device
from ..train import TrainConfig, is_finished
from ..train.config import apply_layers
from ..train.faults import Interrupted
from .responses import checkpoint_responses


class StudyRun(NamedTuple):
    name: str  # the run's folder in the study's directory
    model: str
    seed: int
    arm: str  # "" for a study without arms
    settings: Mapping[str, Any]  # the study's settings with the arm's over them


@dataclass(frozen=True)
class Study:
    name: str
    about: str  # one line for --help and --list
    models: tuple[str, ...]  # trained in this order: longest first, so parallel workers end together
    seeds: tuple[int, ...] = (1,)
    settings: Mapping[str, Any] = field(default_factory=dict)  # "section.field": value
    arms: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # arm name -> its settings
    responses: bool = False  # Figure 7: the layer responses of every finished run
    publish: str | None = None  # zoo name of each finished seed-1 net, e.g. "{model}-cifar10"

    def runs(self, models: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None,
             arms: tuple[str, ...] | None = None):  # fmt: skip
        """Every run of the study (``models``/``seeds`` replace the study's own, ``arms``
        picks some of its arms), validated before any folder is made or hour spent."""
        family = get_model_spec(self.models[0]).family
        for m in models or self.models:
            spec = get_model_spec(m)  # an unknown name: ValueError naming it
            if spec.family != family:
                kind = {"cifar": "CIFAR", "imagenet": "ImageNet"}.get(spec.family, spec.family)
                raise ValueError(
                    f"{m} is a {kind} net; the {self.name} study takes {family} nets "
                    f"(e.g. {','.join(self.models)})"
                )
        for arm in arms or ():
            if arm not in self.arms:
                has = f"its arms: {', '.join(self.arms)}" if self.arms else "it has none"
                raise ValueError(f"--arms {arm!r} is not an arm of the {self.name} study ({has})")
        chosen = {a: extra for a, extra in self.arms.items() if not arms or a in arms} or {"": {}}
        return [
            StudyRun(f"{m}-{arm}-s{s}" if arm else f"{m}-s{s}", m, s, arm, {**self.settings, **extra})
            for m in models or self.models
            for s in seeds or self.seeds
            for arm, extra in chosen.items()
        ]


STUDIES: Registry[Study] = Registry("study")  # register_study: `reslearn reproduce NAME` trains it
register_study, get_study = STUDIES.add, STUDIES.lookup


PAPER_MODELS = tuple(f"{k}{d}" for k in ("plain", "resnet") for d in (20, 32, 44, 56)) + ("resnet110",)
TABLE6_SCHEDULE = {"optim.iterations": 64000, "run.eval_every": 2000}  # lr /10 at 32k, 48k: the recipe's
for _study in (
    Study(
        "cifar",
        "Figure 6, Table 6, Figure 7: plain and residual 20-56 and resnet110 on the paper's schedule",
        PAPER_MODELS,
        responses=True,
    ),
    Study(
        "imagenet",
        "Figure 4 and Table 2: plain and residual 18 and 34 with the ImageNet recipe",
        ("plain18", "plain34", "resnet18", "resnet34"),
        settings={
            "data.data_dir": get_dataset("imagenet").default_dir,
            "data.dataset": "imagenet",
            "optim.recipe": "imagenet",
        },
    ),
    Study(
        "table6",
        "Table 6 on the paper's schedule (64,000 iterations), ResNets only, the test set every 2,000",
        ("resnet56", "resnet20", "resnet110", "resnet32", "resnet44"),
        settings=TABLE6_SCHEDULE,
        publish="{model}-cifar10",
    ),
    Study(
        "degradation-short",
        "the degradation of plain nets at 1,000 iterations (the recipe scaled), an hour on a CPU",
        ("plain56", "resnet56", "plain20", "resnet20"),
        settings={"optim.iterations": 1000, "run.eval_every": 100},
        responses=True,
    ),
    Study(
        "degradation-4k",
        "plain and residual 20 and 56 at 4,000 iterations (issue 13)",
        ("plain56", "resnet56", "plain20", "resnet20"),
        settings={"optim.iterations": 4000, "run.eval_every": 400},
        responses=True,
    ),
    Study(
        "degradation-16k",
        "resnet20 against resnet56 at 16,000 iterations, three seeds (issue 22)",
        ("resnet56", "resnet20"),
        (1, 2, 3),
        settings={"optim.iterations": 16000, "run.eval_every": 1000},
        responses=True,
    ),
    Study(
        "bf16",
        "bf16 autocast against fp32: resnet20 for 8 epochs, two seeds (issue 18)",
        ("resnet20",),
        (1, 2),
        settings={"optim.epochs": 8, "run.channels_last": True},
        arms={"fp32": {"run.amp": "off"}, "bf16": {"run.amp": "bf16"}},
    ),
    Study(
        "gap-16k",
        "what moves resnet56's test error at 16,000 iterations: precision, BN over 64 images (the "
        "paper's two GPUs), 45k/5k split, BN weight decay, per-channel normalisation, the pad's fill "
        "(issue 31: resnet56 ended 0.67 points above the paper, resnet20 within 0.5)",
        ("resnet56",),
        (1, 2),
        settings={"optim.iterations": 16000, "run.eval_every": 1000},
        arms={
            "paper": {},
            "fp32": {"run.amp": "off"},
            "bn64": {"run.bn_splits": 2},  # BN per 64 images, as on the paper's two GPUs
            "45k": {"data.val_split": 0.1},  # 5,000 of the 50,000: the paper's 45k/5k split
            "no-bn-wd": {"optim.norm_weight_decay": 0.0},
            "per-channel": {"data.normalize": "channel"},
            "pad-mean": {"data.pad_fill": "mean"},  # the pad holds the mean (fb.resnet.torch), not black
        },
    ),
):
    register_study(_study)


def run_study(
    study: Study,
    out: str | Path,
    layers: list[dict[str, Any]],
    names: dict[str, str],
    models: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    report: bool = True,
    log=print,
    arms: tuple[str, ...] | None = None,
) -> Path:
    """Train (or continue, or skip) every run of ``study`` in ``out`` with the command
    line's ``layers`` over the study's settings, compute the responses it needs, and write
    the report (``report``: False for the extra workers of ``--parallel``)."""
    from ..train.launch import train_job

    out = Path(out)
    runs = study.runs(models, seeds, arms)
    own = {r.name: {"model.name": r.model, "run.seed": r.seed, "run.out": str(out / r.name)} for r in runs}
    for r in runs:  # every run's config valid before the first hour is spent
        apply_layers(TrainConfig(), [dict(r.settings), *layers, own[r.name]])
    for r in runs:
        rd = out / r.name
        if is_finished(rd):
            log(f"[skip] {rd} is finished")
        elif RunLock.busy(rd):
            log(f"[busy] {rd}: another process trains it")
            continue
        else:
            log(f"[{'resume' if (rd / LAST).exists() else 'train'}] {rd}")
            try:
                train_job([dict(r.settings), *layers, own[r.name]], names, auto=True)
            except (RunBusy, RunExists):
                # Another process took the run between the look above and this one's lock
                # (it decides): it trains it, or finished it already. Anything else is real.
                if not (RunLock.busy(rd) or (rd / LAST).exists() or is_finished(rd)):
                    raise
                log(f"[busy] {rd}: another process trains it")
                continue
            except Interrupted as e:  # the run's checkpoint is written; the study is what goes on
                then = f"the same reslearn reproduce command continues the study ({rd})"
                raise Interrupted(e.signum, e.iteration, e.run_dir, then) from None
        if study.responses:
            device = apply_layers(TrainConfig(), [dict(r.settings), *layers]).run.device
            ensure_responses(rd, device)
    if not report:
        return out
    from .report import write_report

    return write_report(out)


def run_parallel(n: int, argv: list[str], run) -> None:
    """``--parallel N``: N-1 more processes of this command (``--worker``: no report) work
    through the study beside this one (``run``), each taking the next run nobody trains,
    until all have stopped. Each takes its share of the cores (reslearn.threads)."""
    if n < 1:
        raise ValueError(f"--parallel must be a positive integer, got {n}")
    cmd = [sys.executable, "-m", "reslearn", *argv, "--worker"]
    workers = []
    for _ in range(n - 1):
        workers.append(subprocess.Popen(cmd, env=os.environ.copy()))
        time.sleep(3)  # stagger: each worker takes up a different run first
    try:
        run()
    finally:
        codes = [w.wait() for w in workers]
    if any(codes):
        raise ValueError(f"a worker of --parallel {n} failed (exit codes {codes}); rerun to resume")


def study_state(out: Path, r: StudyRun) -> str:
    """A run's state for ``--list``: finished, at iteration N, or not started."""
    rd = out / r.name
    if is_finished(rd):
        return "finished"
    if (rd / LAST).exists():
        from ..checkpoint import load_checkpoint

        return f"at iteration {load_checkpoint(rd).iteration}"
    return "not started"


def ensure_responses(run_dir: Path, device: str = "auto", data_dir: str | None = None) -> Path:
    """Compute Figure-7 responses of a finished run once (RUN_DIR/responses.json)."""
    path = run_dir / "responses.json"
    if is_finished(run_dir) and not path.exists():
        res = checkpoint_responses(run_dir, select_device(device), data_dir)
        atomic_write_text(path, json.dumps(res, indent=1))
    return path
