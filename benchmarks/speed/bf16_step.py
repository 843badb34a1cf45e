"""How far one bf16 training step is from the fp32 step, beside the perturbations SGD
already lives with (issue 13, "deep nets' first epoch, bf16 vs fp32").

A whole bf16 epoch of ResNet-56 takes about two hours on a CPU without bf16 hardware, so
this probe looks at single steps instead. For ResNet-56 (the paper's init, seed S), at
initialisation and after --warm fp32 steps of the recipe (lr 0.1), on one batch A of 128
augmented CIFAR-10 images it computes the loss, the gradient of every parameter and the
batch statistics that every BN layer normalises with, four ways:

  fp32    channels_last, fp32 (reslearn's CPU default here)
  bf16    channels_last, bf16 autocast (the default on AMX CPUs and CUDA)
  nchw    NCHW fp32: the same arithmetic in another kernel order (last-bit differences)
  batchB  fp32 on another batch B of 128 (the sampling noise of SGD itself)

and prints each one's distance from fp32: the relative gradient difference
||g - g_fp32|| / ||g_fp32|| and the cosine, the loss difference, and the relative
difference of the BN batch variances (median and max over channels). If bf16's distance
is far below batchB's, one bf16 step changes the update much less than drawing another
batch does; the first-epoch spread over seeds (docs/first-epoch/) comes from that noise,
amplified by the chaotic first iterations.

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/speed/bf16_step.py [--seeds 1,2]
          [--warm 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/originals.py
from originals import cifar10_dir  # noqa: E402  the original CIFAR-10
from reslearn.data import load_cifar10
from reslearn.data.augment import fit_normalizer, random_crop_flip
from reslearn.data.base import epoch_permutation
from reslearn.models import create_model
from reslearn.speed import SpeedSettings

WAYS = {
    "fp32": SpeedSettings(channels_last=True),
    "bf16": SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16),
    "nchw": SpeedSettings.baseline(),
}


def batch(arrays, normalizer, seed: int, k: int, bs: int = 128):
    """Batch k of epoch 0 in the seed's order, augmented (pad 4, crop, flip) by the seed."""
    idx = epoch_permutation(len(arrays.train_x), seed, 0)[k * bs : (k + 1) * bs]
    g = torch.Generator().manual_seed(seed * 7919 + k)
    return normalizer(random_crop_flip(arrays.train_x[idx], 4, g)), arrays.train_y[idx]


def one_step(model: nn.Module, x, y, speed: SpeedSettings):
    """Loss, flat gradient and the BN layers' batch variances of one training step (on a
    copy: the caller's model and its running statistics stay as they are)."""
    m = copy.deepcopy(model).train()
    if speed.channels_last:
        m.to(memory_format=torch.channels_last)
    variances: list[torch.Tensor] = []
    hooks = [
        b.register_forward_pre_hook(lambda _m, a: variances.append(a[0].double().var((0, 2, 3))))
        for b in m.modules()
        if isinstance(b, nn.BatchNorm2d)
    ]
    with speed.autocast(torch.device("cpu")):
        loss = F.cross_entropy(m(speed.prepare_input(x)), y)
    loss.backward()
    for h in hooks:
        h.remove()
    grad = torch.cat([p.grad.double().flatten() for p in m.parameters()])
    return float(loss.detach()), grad, torch.cat(variances)


def distances(ref, other) -> dict:
    (l0, g0, v0), (l1, g1, v1) = ref, other
    rel_v = ((v1 - v0).abs() / v0.clamp_min(1e-12)).tolist()
    return {
        "loss": l1,
        "d_loss": l1 - l0,
        "grad_rel": float((g1 - g0).norm() / g0.norm()),
        "grad_cos": float(F.cosine_similarity(g1, g0, dim=0)),
        "bn_var_rel_median": statistics.median(rel_v),
        "bn_var_rel_max": max(rel_v),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--warm", type=int, default=100, help="fp32 steps before the second probe (0: none)")
    p.add_argument("--model", default="resnet56")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    root = cifar10_dir()
    arrays = load_cifar10(root, download=False)
    normalizer = fit_normalizer(arrays.train_x, "pixel")
    results = []
    print(
        f"{'seed':>4} {'after':>6} {'way':>7} {'loss':>7} {'d_loss':>9} {'|dg|/|g|':>9} "
        f"{'cos':>7} {'BN var rel med':>15} {'max':>9}"
    )
    for seed in (int(s) for s in a.seeds.split(",")):
        torch.manual_seed(seed)
        model = create_model(a.model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        done = 0
        for point in sorted({0, a.warm}):
            while done < point:  # the recipe's fp32 steps (batches 2, 3, ...: A and B stay unseen)
                x, y = batch(arrays, normalizer, seed, 2 + done)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model.train()(x), y).backward()
                opt.step()
                done += 1
            xa, ya = batch(arrays, normalizer, seed, 0)
            xb, yb = batch(arrays, normalizer, seed, 1)
            ref = one_step(model, xa, ya, WAYS["fp32"])
            ways = {w: one_step(model, xa, ya, s) for w, s in WAYS.items() if w != "fp32"}
            ways["batchB"] = one_step(model, xb, yb, WAYS["fp32"])
            for w, r in ways.items():
                d = {"seed": seed, "after": point, "way": w, **distances(ref, r)}
                results.append(d)
                print(
                    f"{seed:>4} {point:>6} {w:>7} {d['loss']:>7.4f} {d['d_loss']:>+9.2e} "
                    f"{d['grad_rel']:>9.2e} {d['grad_cos']:>7.4f} {d['bn_var_rel_median']:>15.2e} "
                    f"{d['bn_var_rel_max']:>9.2e}",
                    flush=True,
                )
    if a.json:
        Path(a.json).write_text(json.dumps({"model": a.model, "results": results}, indent=1))


if __name__ == "__main__":
    main()
