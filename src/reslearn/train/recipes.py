"""How an ``auto`` config is resolved against the recipes (reslearn.recipes).

A config leaves recipe-dependent fields at None/"auto"; :func:`resolve` fills them from the
recipe before anything runs, so the saved config.json always holds the numbers used.
"""

from __future__ import annotations

from ..data.datasets import detect_dataset, get_dataset
from ..models import ModelSpec
from ..recipes import get_recipe
from .config import TrainConfig

STEP_SCHEDULE_EPOCHS = 90  # the fixed step schedule's length (torchvision's reference)


def choose_dataset(cfg: TrainConfig) -> str:
    """ "auto": the ImageNet entry for the ImageNet recipe, else the registered data set
    that claims the folder (reslearn.data.datasets)."""
    if cfg.data.dataset != "auto":
        return get_dataset(cfg.data.dataset).name
    if cfg.optim.recipe == "imagenet":
        return "imagenet"
    return detect_dataset(cfg.data.data_dir).name


def decision(cfg: TrainConfig, dataset: str) -> dict:
    """What a data set that decides per folder (reslearn.data.folder) chooses for the
    fields still open: {"recipe", "image_size"}; {} for the others."""
    decide, o = get_dataset(dataset).decide, cfg.optim
    open_fields = o.recipe == "auto" or cfg.data.image_size is None or o.batch_size is None
    if decide is None or not (open_fields or (o.iterations is None and o.epochs is None)):
        return {}
    return decide(cfg.data)


def choose_recipe(cfg: TrainConfig, spec: ModelSpec, dataset: str, decided: dict) -> str:
    """ "auto": the data set's recipe; a CIFAR net (32x32 input) takes the cifar recipe."""
    if cfg.optim.recipe != "auto":
        return cfg.optim.recipe
    recipe = decided.get("recipe", get_dataset(dataset).recipe)
    # The photo pipeline crops at the net's input size: a net made for 32x32 inputs trains
    # with the small-image recipe instead.
    return "cifar" if get_recipe(recipe).photos and spec.family == "cifar" else recipe


def resolve(cfg: TrainConfig, spec: ModelSpec) -> TrainConfig:
    """``cfg`` with the data set and every recipe-dependent None/"auto" resolved."""
    dataset = choose_dataset(cfg)
    decided = decision(cfg, dataset)
    name = choose_recipe(cfg, spec, dataset, decided)
    r, o, d = get_recipe(name), cfg.optim, cfg.data
    changes: dict = {"optim.recipe": name, "data.dataset": dataset}
    if o.batch_size is None:  # a small folder: the largest power of two its images fill
        fits = 2 ** (decided.get("train_images", r.batch_size).bit_length() - 1)
        changes["optim.batch_size"] = min(r.batch_size, fits)
    schedule = r.schedule if o.schedule == "auto" else o.schedule
    changes["optim.schedule"] = schedule
    if o.iterations is None and o.epochs is None:
        if "epochs" in decided:  # your own data: a run length in epochs, not the paper's
            changes["optim.epochs"] = decided["epochs"]
        elif schedule == "step":
            changes["optim.epochs"] = STEP_SCHEDULE_EPOCHS
        else:
            changes["optim.iterations"] = r.iterations
    if d.loader == "auto":
        changes["data.loader"] = r.loader
    if cfg.run.eval_batch_size is None:
        changes["run.eval_batch_size"] = r.eval_batch_size
    if r.photos:
        if changes.get("data.loader", d.loader) == "device":
            raise ValueError(f"the {name} recipe streams its images: --loader stream (default) or dali")
        if d.image_size is None:
            changes["data.image_size"] = spec.input_size[0]
    else:
        if d.loader == "dali":
            raise ValueError("--loader dali serves the ImageNet recipe; CIFAR data uses device or stream")
        if get_dataset(dataset).decide is not None and d.image_size is None:  # a folder: its images' size
            changes["data.image_size"] = decided.get("image_size") or spec.input_size[0]
        elif get_dataset(dataset).decide is None and (d.image_size is not None or d.class_index is not None):
            bad = "image_size" if d.image_size is not None else "class_index"
            raise ValueError(f"data.{bad} applies to the ImageNet recipe (this run uses the {name} recipe)")
    return cfg.replace(changes)
