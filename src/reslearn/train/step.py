"""One training step (forward, loss, backward, SGD update) in the run's speed settings:
the memory format, bf16 autocast, torch.compile, and what a non-finite loss does."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import DistInfo, rank_order
from ..speed import SpeedSettings


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
        bn_splits: int = 1,
    ) -> None:
        """``bn_splits``: the model's BN is SplitBatchNorm2d in that many slices."""
        self.skip_non_finite, self.dist, self.bn_splits = skip_non_finite, dist, bn_splits
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
        if self.bn_splits > 1:  # each BN slice holds one rank's share (loss and errors: any order)
            order = rank_order(len(y), self.bn_splits, y.device)
            x, y = x[order], y[order]
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
