"""Process-group awareness: which process this is and how to combine numbers across them.

With one process (no ``torch.distributed`` process group) everything here is a no-op:
rank 0 of 1, the main process, sums unchanged. Under ``torchrun`` (``WORLD_SIZE`` > 1 in
the environment) :func:`init_from_env` joins the group: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn

from . import environ

# Collectives that wait longer than this fail instead of hanging (a dead peer, a rank
# stuck in I/O): the job then ends with that error. Seconds; RESLEARN_DIST_TIMEOUT.
DEFAULT_TIMEOUT_S = 300


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs and runs git."""
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of ``t`` over processes (in place; returns it). Identity with one process."""
        if self.world_size > 1:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def shard(self, items: torch.Tensor) -> torch.Tensor:
        """This process's disjoint share of a global batch (all of it alone): rank r takes
        items r, r + W, r + 2W, ... so every share has the same size when W divides it."""
        return items if self.world_size == 1 else items[self.rank :: self.world_size]

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Rank 0's BN running statistics to every process (before an evaluation, so each
        process scores its share of the split with the model rank 0 saves)."""
        if self.world_size > 1:
            for b in model.buffers():
                tdist.broadcast(b, 0)


def current() -> DistInfo:
    """The process group's rank and size, or a single process."""
    if tdist.is_available() and tdist.is_initialized():
        return DistInfo(tdist.get_rank(), tdist.get_world_size())
    return DistInfo()


def launched_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process alone (from torchrun's environment: true
    before the process group is joined and after it is left)."""
    return int(os.environ.get("RANK", "0")) == 0


def init_from_env(device: torch.device) -> DistInfo:
    """Join torchrun's process group once (NCCL for CUDA, gloo for CPU); a no-op alone."""
    if launched_world_size() <= 1 or tdist.is_initialized():
        return current()
    timeout = timedelta(seconds=environ.get("RESLEARN_DIST_TIMEOUT", float(DEFAULT_TIMEOUT_S)))
    store = _attempt_store(timeout)
    if device.type == "cuda":
        torch.cuda.set_device(local_device(device))
        tdist.init_process_group("nccl", timeout=timeout, device_id=local_device(device), **store)
    else:
        tdist.init_process_group("gloo", timeout=timeout, **store)
    return current()


def _attempt_store(timeout: timedelta) -> dict:
    """The process group's store, in a namespace of its own for each torchrun restart.

    torchrun's agent keeps one TCPStore for all restarts of a job
    (``TORCHELASTIC_USE_AGENT_STORE``) and ``init_process_group`` writes the same keys in
    it every time, so a restarted rank can read the address its dead peer published in
    the previous attempt and fail to connect (gloo "connectFullMesh ... Connection
    refused", NCCL's unique id likewise: pytorch/pytorch#135712; seen in our CI on torch
    2.14.1). Keys under ``reslearn/attempt{TORCHELASTIC_RESTART_COUNT}`` cannot be stale. The count is the
    same for every process of one agent (one machine); across machines torch does not
    guarantee that, so multi-machine jobs that restart should set
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (a fresh store per attempt; no prefix then).
    Empty (torch's default store) outside torchrun or without a shared store.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    store, rank, world_size = next(tdist.rendezvous("env://", timeout=timeout))
    store.set_timeout(timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    prefixed = tdist.PrefixStore(f"reslearn/attempt{attempt}", store)
    return {"store": prefixed, "rank": rank, "world_size": world_size}


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process drives the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and launched_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; its gradient is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        tdist.all_reduce(out, op=tdist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        tdist.all_reduce(g, op=tdist.ReduceOp.SUM)
        return g


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the global batch (all processes).

    Hand-written for CPU (gloo): ``torch.nn.SyncBatchNorm`` refuses CPU tensors. Two
    differentiable all-reduces (the sums, then the squared deviations, for the same
    precision as one-process BN); the backward pass all-reduces their gradients, so with
    DDP the update equals the one-process update on the whole batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and tdist.is_available() and tdist.is_initialized()):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        s = all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        n = s[c]
        mean = s[:c] / n
        d = x - mean[None, :, None, None]
        var = all_reduce((d * d).sum((0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
                self.num_batches_tracked += 1
        y = d * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm as ``splits`` processes compute it, on one process: the paper's CIFAR runs
    put a batch of 128 on two GPUs, so each normalised over its 64 images. The batch's
    ``splits`` equal contiguous slices are normalised each on its own (TrainStep orders the
    batch so that slice ``i`` holds the images rank ``i`` would get); the running statistics
    follow slice 0 alone, as DDP keeps rank 0's (it broadcasts them at every forward).
    Evaluation is the usual BN, so a trained net is a plain ResNet (checkpoint, exports).
    Contiguous slices and one concatenation: strided slices ran at half the speed on a CPU."""

    def __init__(self, *args, splits: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.splits = splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W), B a multiple of splits
        if not self.training or self.splits == 1:
            return super().forward(x)
        first, *rest = x.chunk(self.splits)
        # The other slices leave the running statistics alone: rank 0's are the ones kept.
        rest = [F.batch_norm(s, None, None, self.weight, self.bias, True, 0.0, self.eps) for s in rest]
        return torch.cat([super().forward(first), *rest])


def rank_order(n: int, splits: int, device: torch.device) -> torch.Tensor:
    """The order of a batch of ``n`` that puts the share of each of ``splits`` ranks
    (DistInfo.shard: items i, i + splits, ...) in one contiguous slice, rank 0's first."""
    return torch.arange(n, device=device).view(n // splits, splits).T.reshape(-1)


def replace_batchnorm(model: nn.Module, make, device: torch.device) -> nn.Module:
    """Every ``nn.BatchNorm2d`` of ``model`` replaced by ``make(...)`` of its settings, with
    its parameters, running statistics, mode and frozen parameters (--freeze-to), before
    the optimizer takes the parameters."""
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            args = (child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new = make(*args, device=device)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            for p, old in zip(new.parameters(), child.parameters()):
                p.requires_grad_(old.requires_grad)
            setattr(model, name, new)
        else:
            replace_batchnorm(child, make, device)
    return model


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """--sync-bn: BN over the global batch. torch's SyncBatchNorm on CUDA, ours on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return replace_batchnorm(model, SyncBatchNorm2d, device)
