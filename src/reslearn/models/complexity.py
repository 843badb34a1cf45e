"""Parameters and multiply-adds, counted the way the paper counts FLOPs (Table 1).

Multiply-adds of convolutions and fully-connected layers only (BN, ReLU, pooling and
additions are not counted, as in the paper), for ONE image of the given size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Complexity(NamedTuple):
    params: int
    macs: int


class StageComplexity(NamedTuple):
    stage: str  # "conv1", "conv2_x", ..., "fc"
    output_size: tuple[int, int]  # (H, W) of the stage's output; (1, 1) for fc
    blocks: int
    params: int
    macs: int


def layer_macs(layer: nn.Module, out: torch.Tensor) -> int:
    """Multiply-adds of one forward call of a convolution or fully-connected layer that
    gave ``out`` (the whole batch's; ``bench`` times layers with it too)."""
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return out.numel() * (layer.in_channels // layer.groups) * kh * kw
    return out.numel() * layer.in_features


def _stage_of(name: str) -> str:
    """Map a module name to the paper's stage name (Table 1)."""
    head = name.split(".", 1)[0]
    if head.startswith("layer"):
        return f"conv{int(head[5:]) + 1}_x"  # layer1 -> conv2_x
    if head == "fc":
        return "fc"
    return "conv1"  # conv1, bn1, maxpool (the stem)


def spatial_size(shape) -> tuple[int, int]:
    """(H, W) from (H, W), (C, H, W) or (N, C, H, W) (the shapes torchinfo and ptflops
    take); the counts are always for one image. C must be 3."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) == 3:
        if shape[0] != 3:
            raise ValueError(f"input shape {shape!r}: the nets take 3 channels, got {shape[0]}")
        shape = shape[1:]
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(
            f"input_size must be (H, W), (C, H, W) or (N, C, H, W) with positive sizes, got {shape!r}"
        )
    return shape


def _count(model: nn.Module, input_size: tuple[int, int]) -> tuple[dict, dict]:
    """Run one image through ``model``; return per-stage macs and output sizes."""
    input_size = spatial_size(input_size)
    macs: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    hooks = []

    def hook(name: str):
        def fn(mod: nn.Module, inp, out: torch.Tensor) -> None:
            stage = _stage_of(name)
            sizes[stage] = tuple(out.shape[-2:]) if isinstance(mod, nn.Conv2d) else (1, 1)
            macs[stage] = macs.get(stage, 0) + layer_macs(mod, out) // out.shape[0]  # one image

        return fn

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            hooks.append(mod.register_forward_hook(hook(name)))
        elif isinstance(mod, nn.MaxPool2d):  # conv1's output in Table 1 is after the pool
            hooks.append(
                mod.register_forward_hook(
                    lambda m, i, o, n=name: sizes.__setitem__(_stage_of(n), tuple(o.shape[-2:]))
                )
            )
    p = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return macs, sizes


def complexity(model: nn.Module, input_size: tuple[int, ...] = (224, 224)) -> Complexity:
    """(params, macs): parameter count and multiply-adds for one image of ``input_size``,
    given as (H, W), (C, H, W) or (N, C, H, W) (N does not scale the count)."""
    macs, _ = _count(model, tuple(input_size))
    params = sum(p.numel() for p in model.parameters())
    return Complexity(params, sum(macs.values()))


def stage_complexity(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> list[StageComplexity]:
    """Per-stage breakdown (conv1, conv2_x, ..., fc) for ``reslearn summary``."""
    macs, sizes = _count(model, tuple(input_size))
    params: dict[str, int] = {}
    for name, p in model.named_parameters():
        s = _stage_of(name)
        params[s] = params.get(s, 0) + p.numel()
    rows = []
    order = ["conv1"] + [f"conv{i + 2}_x" for i in range(getattr(model, "num_stages", 4))] + ["fc"]
    for s in order:
        if s not in params and s not in macs:
            continue
        blocks = len(getattr(model, f"layer{int(s[4]) - 1}")) if s.endswith("_x") else 1
        rows.append(StageComplexity(s, sizes.get(s, (1, 1)), blocks, params.get(s, 0), macs.get(s, 0)))
    return rows
