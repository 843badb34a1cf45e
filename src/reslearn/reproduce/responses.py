"""Layer responses (paper Figure 7): the standard deviation of each 3x3 layer's output,
after BN and before the ReLU / addition, over the CIFAR-10 test set."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn


def response_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """The BN that follows each 3x3 convolution, in forward order.

    Our blocks name a convolution ``convK`` and its BN ``bnK`` in the same module (the
    stem: ``conv1``/``bn1``), so the pairing is by name; the count equals the number of
    3x3 convolutions (2 per basic block, plus the CIFAR stem).
    """
    modules = dict(model.named_modules())
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            prefix, _, leaf = name.rpartition(".")
            bn_name = (prefix + "." if prefix else "") + leaf.replace("conv", "bn", 1)
            bn = modules.get(bn_name)
            if not isinstance(bn, nn.BatchNorm2d):
                raise ValueError(f"3x3 conv {name!r} has no BN {bn_name!r} after it")
            out.append((bn_name, bn))
    return out


@torch.inference_mode()
def layer_responses(
    model: nn.Module, normalizer: nn.Module, batches: Iterable[torch.Tensor]
) -> list[tuple[str, float]]:
    """(layer name, std) for every 3x3 layer, in layer order.

    The std is over every element (images x channels x positions) of the BN output,
    accumulated in float64 as running sums, so the whole test set fits in any memory.
    """
    layers = response_layers(model)
    device = next(model.parameters()).device
    sums = torch.zeros(len(layers), dtype=torch.float64, device=device)
    sqs = torch.zeros_like(sums)
    counts = [0] * len(layers)
    hooks = []
    for i, (_, bn) in enumerate(layers):

        def hook(mod, inp, out, i=i):
            o = out.double()
            sums[i] += o.sum()
            sqs[i] += (o * o).sum()
            counts[i] += o.numel()

        hooks.append(bn.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(normalizer(x.to(device)))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    res = []
    for i, (name, _) in enumerate(layers):
        n = counts[i]
        mean = sums[i] / n
        var = (sqs[i] / n - mean * mean).clamp_min(0) * n / max(1, n - 1)
        res.append((name, float(var.sqrt())))
    return res


def checkpoint_responses(checkpoint: str | Path, device: torch.device, data_dir: str | None = None) -> dict:
    """Figure 7 for one trained net: {"model", "iteration", "layers", "std"} over the test
    split of the data it was trained on (or ``data_dir``)."""
    from ..evaluate import checkpoint_split, load_with_normalizer

    model, normalizer, ckpt = load_with_normalizer(checkpoint, device)
    split = checkpoint_split(ckpt, data_dir, device=device)
    res = layer_responses(model, normalizer, (x for x, _ in split))
    return {
        "model": ckpt.model_name,
        "iteration": ckpt.iteration,
        "layers": [n for n, _ in res],
        "std": [s for _, s in res],
    }
