"""Whether a trained CIFAR net's BatchNorm statistics account for any of its test error
(issue 31's gap table: the bf16 row and the pad row).

Training keeps each BatchNorm layer's running mean and variance (momentum 0.1) from the
batches it saw: in bf16 autocast where the probe chose it, over crops whose 4-pixel pad
is black. Evaluation runs in fp32 on unpadded test images. This script measures the net's
test error with those statistics, then with statistics re-estimated in one pass over the
50,000 training images (cumulative average, momentum None, weights unchanged), in fp32 and
in bf16, from (a) crops augmented as in training (pad 4 black, crop, flip) and (b) the
images as they are (no pad, like the test images). (a) in fp32 against the training's own
statistics is what bf16 did to them; (b) is how much the net depends on statistics that
include the pad.

Usage: python benchmarks/studies/bn_statistics.py [NET] [--data-dir data/cifar10]
       NET: a published net's name, a run folder or a checkpoint (default resnet56-cifar10).
A pass took 2-4 minutes for resnet56 (one thread on (Z4), beside two training runs).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

import reslearn
from reslearn.data.augment import random_crop_flip
from reslearn.data.cifar import load_cifar


def test_error(model: nn.Module, norm: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype=None) -> float:
    """Top-1 error (%) of ``model`` in eval mode on uint8 images ``x``; forward in ``dtype``
    autocast when given (bf16), else fp32."""
    model.eval()
    wrong = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for i in range(0, len(x), 1000):
            out = model(norm(x[i : i + 1000]).contiguous(memory_format=torch.channels_last))
            wrong += (out.float().argmax(1) != y[i : i + 1000]).sum().item()
    return 100 * wrong / len(x)


def reestimated(
    model: nn.Module, norm: nn.Module, x: torch.Tensor, augment: bool, dtype, batch: int
) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are the average over one pass of
    ``x`` in batches of ``batch`` (shuffled, seed 0), padded and cropped as in training if
    ``augment``; forward in ``dtype`` autocast (None: fp32)."""
    m = copy.deepcopy(model)
    for layer in m.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average over the pass
    m.train()
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for i in range(0, len(x), batch):
            images = x[order[i : i + batch]]
            m(
                norm(random_crop_flip(images, 4, g) if augment else images).contiguous(
                    memory_format=torch.channels_last
                )
            )
    return m


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("net", nargs="?", default="resnet56-cifar10")
    ap.add_argument("--data-dir", default="data/cifar10")
    ap.add_argument(
        "--batch", type=int, default=128, help="images a batch in the re-estimating pass (training's)"
    )
    a = ap.parse_args(argv)
    model, pre, _ = reslearn.load(a.net)
    data = load_cifar(a.data_dir, download=False)
    norm = pre.normalizer
    print(f"{a.net} on {data.source}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("| BatchNorm statistics | forward | test error (%) |\n|---|---|---:|")
    for dtype in (None, torch.bfloat16):
        err = test_error(model, norm, data.test_x, data.test_y, dtype)
        where = "bf16" if dtype else "fp32"
        print(f"| as trained (running averages, momentum 0.1) | eval in {where} | {err:.2f} |")
    for augment in (True, False):
        for dtype in (None, torch.bfloat16):
            t = time.time()
            m = reestimated(model, norm, data.train_x, augment, dtype, a.batch)
            err = test_error(m, norm, data.test_x, data.test_y)
            source = "training crops (pad 4 black, crop, flip)" if augment else "training images unpadded"
            print(
                f"| re-estimated over {source}, in {'bf16' if dtype else 'fp32'} | eval in fp32 | {err:.2f} |"
                f"  ({time.time() - t:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
