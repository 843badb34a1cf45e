"""The optimizer of the paper's recipe: SGD with its parameter groups (weight decay on
BatchNorm or not, the new layers' --head-lr)."""

from __future__ import annotations

import torch
from torch import nn


def norm_and_bias_parameters(model: nn.Module) -> set[int]:
    """ids of BN weights/biases and of every bias (what ``norm_weight_decay`` governs)."""
    out = set()
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if isinstance(m, nn.modules.batchnorm._BatchNorm) or name == "bias":
                out.add(id(p))
    return out


def param_groups(model: nn.Module, weight_decay: float, norm_weight_decay: float | None) -> list[dict]:
    """One group (every parameter decayed, the paper and Caffe) unless ``norm_weight_decay``
    is set: then BN parameters and biases form a second group with that decay
    (torchvision's ``--norm-weight-decay``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if norm_weight_decay is None:
        return [{"params": params, "weight_decay": weight_decay}]
    nb = norm_and_bias_parameters(model)
    return [
        {"params": [p for p in params if id(p) not in nb], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in nb], "weight_decay": norm_weight_decay},
    ]


def make_optimizer(
    model: nn.Module, cfg, device: torch.device, head: set[str] = frozenset()
) -> torch.optim.SGD:
    """SGD with momentum 0.9 and weight decay 1e-4 (paper Sections 3.4 and 4.2); ``cfg``
    is an OptimConfig. ``head``: names of parameters that take ``cfg.head_lr`` (fine-tuning's
    new layers): their groups carry ``lr_scale``, head_lr / lr, which the loop applies to
    the schedule's lr."""
    kw = {}
    if device.type == "cuda":
        kw["fused"] = True  # one kernel for the update instead of a few per parameter group
    groups = param_groups(model, cfg.weight_decay, getattr(cfg, "norm_weight_decay", None))
    if head and cfg.head_lr is not None:
        ids = {id(p) for n, p in model.named_parameters() if n in head}
        groups = [
            {
                **g,
                "params": [p for p in g["params"] if (id(p) in ids) == new],
                **({"lr_scale": cfg.head_lr / cfg.lr} if new else {}),
            }
            for g in groups
            for new in (False, True)
        ]
        groups = [g for g in groups if g["params"]]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, **kw)
