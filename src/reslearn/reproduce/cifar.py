"""``reslearn reproduce cifar``: every (model, seed) run of the paper's CIFAR study.

Runs go to ``DIR/<model>-s<seed>/``; a finished run (final.json) is skipped, an
interrupted one (last.pt, no final.json) is resumed exactly, then the report is built.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluate import checkpoint_data, load_for_inference
from ..models import get_model_spec
from ..speed import select_device
from ..train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, is_finished, train
from .responses import layer_responses

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


def run_dir_for(out: Path, model: str, seed: int) -> Path:
    return out / f"{model}-s{seed}"


def reproduce_cifar(
    out: str | Path,
    models: tuple[str, ...] = PAPER_MODELS,
    seeds: tuple[int, ...] = (1,),
    iterations: int = 64_000,
    data_dir: str = "./data/cifar10",
    device: str = "auto",
    eval_every: int = 0,
    log=print,
) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for model in models:
        get_model_spec(model)  # validate names before hours of training
        for seed in seeds:
            rd = run_dir_for(out, model, seed)
            if is_finished(rd):
                log(f"[skip] {rd} is finished")
            elif (rd / "last.pt").exists():
                log(f"[resume] {rd}")
                train(resume=rd)
            else:
                log(f"[train] {rd}")
                train(
                    TrainConfig(
                        ModelConfig(model),
                        DataConfig(data_dir),
                        OptimConfig(iterations=iterations),
                        RunConfig(
                            out=str(rd),
                            seed=seed,
                            device=device,
                            eval_every=eval_every,
                            progress="log",
                        ),
                    )
                )
            ensure_responses(rd, device=device)
    from .report import write_report

    return write_report(out)


def ensure_responses(run_dir: Path, device: str = "auto", data_dir: str | None = None) -> Path:
    """Compute Figure-7 responses of a finished run once (RUN_DIR/responses.json)."""
    path = run_dir / "responses.json"
    if path.exists():
        return path
    dev = select_device(device)
    model, normalizer, ckpt = load_for_inference(run_dir, dev)
    res = layer_responses(model, normalizer, checkpoint_data(ckpt, data_dir).test_x)
    path.write_text(
        json.dumps(
            {
                "model": ckpt.model_name,
                "iteration": ckpt.iteration,
                "layers": [n for n, _ in res],
                "std": [s for _, s in res],
            },
            indent=1,
        )
    )
    return path
