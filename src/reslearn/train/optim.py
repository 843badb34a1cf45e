"""The optimizer of the paper's recipe and the training step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import DistInfo
from ..speed import SpeedSettings


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


class TrainStep:
    """One SGD step: forward, cross-entropy, backward, update. Returns device tensors
    (loss, number of misclassified samples) so that the caller never waits on the host."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        speed: SpeedSettings,
        device: torch.device,
        skip_non_finite: bool = False,
        dist: DistInfo = DistInfo(),
    ) -> None:
        self.skip_non_finite, self.dist = skip_non_finite, dist
        self.last_skipped = False
        self.speed = speed
        self.device = device
        if not isinstance(model, nn.parallel.DistributedDataParallel):
            speed.prepare_model(model)  # (a DDP model is converted before wrapping)
        if speed.compile:
            # On CUDA, "reduce-overhead" replays CUDA graphs: a ResNet-56 step is hundreds of
            # small kernels, so launch overhead, not arithmetic, bounds it at batch 128.
            mode = "reduce-overhead" if device.type == "cuda" else None
            self.model = torch.compile(model, mode=mode)
        else:
            self.model = model
        self.optimizer = optimizer

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.speed.prepare_input(x)
        with self.speed.autocast(self.device):
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        if self.skip_non_finite:
            # --nan-policy skip-batch: no backward, no update for a non-finite loss (a host
            # sync per step; every process skips together, or DDP would wait forever).
            bad = self.dist.all_reduce_sum((~torch.isfinite(loss.detach())).float().reshape(1))
            self.last_skipped = bool(bad.item())
            if self.last_skipped:
                return loss.detach(), (logits.argmax(1) != y).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (logits.argmax(1) != y).sum()
