"""The study runner of ``reslearn reproduce cifar|imagenet``: every (model, seed) run of one
of the paper's studies.

Runs go to ``DIR/<model>-s<seed>/``; a finished run (final.json) is skipped, an
interrupted one (last.pt, no final.json) is resumed exactly, then the report is built.
CIFAR (Figure 6, Table 6, Figure 7): the 6n+2 nets with the CIFAR recipe. ImageNet
(Figure 4, Table 2): plain/residual 18 and 34 with the ImageNet recipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..data.datasets import get_dataset
from ..files import atomic_write_text
from ..models import get_model_spec
from ..rundir import LAST
from ..speed import select_device
from ..train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, is_finished, train
from .responses import checkpoint_responses

PAPER_MODELS = (
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
)
FIGURE4_MODELS = ("plain18", "plain34", "resnet18", "resnet34")


def run_dir_for(out: Path, model: str, seed: int) -> Path:
    return out / f"{model}-s{seed}"


def run_study(
    out: str | Path,
    models: tuple[str, ...],
    seeds: tuple[int, ...],
    make_config: Callable[[str, int, Path], TrainConfig],
    after: Callable[[Path], None] | None = None,
    log=print,
) -> Path:
    """Train (or resume, or skip) every (model, seed), call ``after`` on each finished
    run, and write the report."""
    out = Path(out)
    for model in models:
        get_model_spec(model)  # validate names before hours of training (and any folder)
    out.mkdir(parents=True, exist_ok=True)
    for model in models:
        for seed in seeds:
            rd = run_dir_for(out, model, seed)
            if is_finished(rd):
                log(f"[skip] {rd} is finished")
            elif (rd / LAST).exists():
                log(f"[resume] {rd}")
                train(resume=rd)
            else:
                log(f"[train] {rd}")
                train(make_config(model, seed, rd))
            if after is not None:
                after(rd)
    from .report import write_report

    return write_report(out)


def reproduce_cifar(
    out: str | Path,
    models: tuple[str, ...] = PAPER_MODELS,
    seeds: tuple[int, ...] = (1,),
    iterations: int | None = None,  # None: the recipe's (64,000)
    data_dir: str | None = None,  # None: the data set's default folder
    device: str = "auto",
    eval_every: int = 0,
    log=print,
) -> Path:
    data = DataConfig(data_dir or get_dataset("cifar10").default_dir, dataset="cifar10")

    def make(model: str, seed: int, rd: Path) -> TrainConfig:
        run = RunConfig(out=str(rd), seed=seed, device=device, eval_every=eval_every, progress="log")
        return TrainConfig(ModelConfig(model), data, OptimConfig(iterations=iterations), run)

    return run_study(out, models, seeds, make, lambda rd: ensure_responses(rd, device=device), log)


def reproduce_imagenet(
    out: str | Path,
    models: tuple[str, ...] = FIGURE4_MODELS,
    seeds: tuple[int, ...] = (1,),
    iterations: int | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    eval_every: int = 0,
    image_size: int | None = None,
    class_index: str | None = None,
    batch_size: int | None = None,
    log=print,
) -> Path:
    """Figure 4: plain vs residual 18/34 with the ImageNet recipe (``iterations`` None: the
    recipe's 60e4; ``image_size``: a smaller crop for CPUs, the scale range follows)."""
    for m in models:
        if get_model_spec(m).family != "imagenet":
            raise ValueError(
                f"{m} is a CIFAR net; the ImageNet study takes ImageNet nets (e.g. {FIGURE4_MODELS})"
            )

    def make(model: str, seed: int, rd: Path) -> TrainConfig:
        return TrainConfig(
            ModelConfig(model),
            DataConfig(
                data_dir or get_dataset("imagenet").default_dir,
                dataset="imagenet",
                image_size=image_size,
                class_index=class_index,
            ),
            OptimConfig(recipe="imagenet", iterations=iterations, batch_size=batch_size),
            RunConfig(out=str(rd), seed=seed, device=device, eval_every=eval_every, progress="log"),
        )

    return run_study(out, models, seeds, make, None, log)


def ensure_responses(run_dir: Path, device: str = "auto", data_dir: str | None = None) -> Path:
    """Compute Figure-7 responses of a finished run once (RUN_DIR/responses.json)."""
    path = run_dir / "responses.json"
    if not path.exists():
        res = checkpoint_responses(run_dir, select_device(device), data_dir)
        atomic_write_text(path, json.dumps(res, indent=1))
    return path
