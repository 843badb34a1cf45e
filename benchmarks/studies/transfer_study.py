"""Transfer study (issue 21): does fine-tuning a trained net beat training from scratch?

On the Imagenette subset in ../shared/data (10 ImageNet classes, 500 training and 200 val
images a class, 224x224 JPEGs): resnet18 is trained on five classes (A: the first five
wnids), then trained on the other five (B) twice per seed at the same budget and image
size: once from --init A's net (every layer but the new 5-way classifier loaded, nothing
frozen), once from random weights. The two runs of a seed differ only in --init. Each run
is resumable: rerun the script after any stop; finished runs are skipped.

The recipe is the ImageNet recipe scaled to a CPU (crop 64 of shorter side [73, 137], flip,
PCA lighting, per-pixel mean of the training split), batch 64, lr 0.1 /10 at 50% and 75%
of the run, one evaluation per epoch on B's 1,000 val images.

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/studies/transfer_study.py
       [--image-size 64] [--source-epochs 16] [--epochs 8] [--seeds 1,2] [--out runs/transfer]
       [--report docs/transfer]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path

from reslearn.train import read_metrics, train
from reslearn.train.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig


def half(src: Path, dst: Path, wnids: list[str]) -> Path:
    """A 5-class view of Imagenette: symlinks to its class folders, nothing copied."""
    for split in ("train", "val"):
        (dst / split).mkdir(parents=True, exist_ok=True)
        for w in wnids:
            link = dst / split / w
            if not link.exists():
                link.symlink_to((src / split / w).resolve(), target_is_directory=True)
    return dst


def config(data: Path, out: Path, seed: int, epochs: int, a, init: Path | None = None) -> TrainConfig:
    return TrainConfig(
        ModelConfig("resnet18", init=str(init) if init else None),
        DataConfig(str(data), image_size=a.image_size, workers=1),
        OptimConfig(recipe="imagenet", batch_size=64, epochs=epochs, schedule="milestones"),
        RunConfig(out=str(out), seed=seed, progress="log", threads=1),
    )


def run(cfg: TrainConfig) -> Path:
    out = Path(cfg.run.out)
    if (out / "final.json").is_file():
        print(f"[skip] {out} is finished", flush=True)
        return out
    if (out / "last.pt").is_file():
        print(f"[resume] {out}", flush=True)
        return train(resume=out)
    print(f"[train] {out}", flush=True)
    return train(cfg)


def curve(run_dir: Path) -> list[tuple[float, float]]:
    return [(r["epoch"], r["val_err"]) for r in read_metrics(run_dir)]


def report(out: Path, dest: Path, seeds: list[int], a) -> None:
    """dest/report.md with the final errors and dest/curves.png, plus every run's metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dest.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    final = {"fine-tuned": [], "from scratch": []}
    for seed in seeds:
        for kind, name, style in (("fine-tuned", "finetune", "-"), ("from scratch", "scratch", "--")):
            rd = out / f"{name}-s{seed}"
            xs, ys = zip(*curve(rd))
            ax.plot(xs, ys, style, label=f"{kind}, seed {seed}")
            final[kind].append(ys[-1])
            shutil.copy(rd / "metrics.jsonl", dest / f"{name}-s{seed}.metrics.jsonl")
    src = curve(out / "source")
    shutil.copy(out / "source" / "metrics.jsonl", dest / "source.metrics.jsonl")
    ax.set_xlabel("epoch (2,500 training images of classes B)")
    ax.set_ylabel("val top-1 error (%), 1,000 images")
    ax.set_title(f"resnet18 on Imagenette classes B at {a.image_size}x{a.image_size}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(dest / "curves.png", dpi=110)
    ft, sc = final["fine-tuned"], final["from scratch"]
    verdict = "beats" if max(ft) < min(sc) else ("does not beat" if min(ft) >= max(sc) else "overlaps")
    lines = [
        "# Transfer study: fine-tuned vs from scratch (`benchmarks/studies/transfer_study.py`)",
        "",
        f"resnet18, Imagenette (../shared/data/imagenette-224), image size {a.image_size}, batch 64, "
        f"lr 0.1 /10 at 50% and 75%. Source: classes A, {a.source_epochs} epochs, seed 1, final val "
        f"error {src[-1][1]:.2f}% (5-way). Target: classes B, {a.epochs} epochs per run.",
        "",
        "| seed | fine-tuned (--init source) | from scratch |",
        "|---|---|---|",
        *[f"| {s} | {f:.2f} | {c:.2f} |" for s, f, c in zip(seeds, ft, sc)],
        f"| mean | {statistics.mean(ft):.2f} | {statistics.mean(sc):.2f} |",
        "",
        f"Val top-1 error (%) after the last epoch, 1,000 images of B. Verdict: the fine-tuned net "
        f"{verdict} the one from scratch on every seed (fine-tuned {min(ft):.2f}-{max(ft):.2f}, "
        f"from scratch {min(sc):.2f}-{max(sc):.2f}).",
        "",
        "![curves](curves.png)",
        "",
        f"Hardware: {a.hardware}.",
    ]
    (dest / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--source-epochs", type=int, default=16)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--report", default="docs/transfer")
    p.add_argument("--hardware", default="see the README")
    a = p.parse_args()
    root = Path(os.environ.get("RESLEARN_DATA_ROOT", "../shared/data")) / "imagenette-224"
    wnids = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    out = Path(a.out)
    data_a = half(root, out / "data" / "A", wnids[:5])
    data_b = half(root, out / "data" / "B", wnids[5:])
    seeds = [int(s) for s in a.seeds.split(",")]
    source = run(config(data_a, out / "source", 1, a.source_epochs, a))
    for seed in seeds:
        run(config(data_b, out / f"finetune-s{seed}", seed, a.epochs, a, init=source))
        run(config(data_b, out / f"scratch-s{seed}", seed, a.epochs, a))
    report(out, Path(a.report), seeds, a)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
