"""Top-1/top-5 error of a model over an evaluation split, with any test-time views."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import DistInfo
from ..recipes import get_recipe
from ..speed import SpeedSettings
from .views import ViewFn, single_view


def eval_batch_size(recipe: str, asked: int | None) -> int:
    """The one evaluation batch rule (training's evaluations and ``reslearn eval``): the
    recipe's (CIFAR's 32x32 test set in 10 batches), and for photos at most that (224x224
    views decoded by workers: memory), whatever was asked."""
    r = get_recipe(recipe)
    if asked is None:
        return r.eval_batch_size
    return min(asked, r.eval_batch_size) if r.photos else asked


def _scores(model, views, preprocess, speed, device, forward) -> tuple[torch.Tensor, bool]:
    """(N, classes) scores: the logits for one view, else softmax averaged over views."""
    outs = []
    for v in views:
        with speed.autocast(device):
            x = speed.prepare_input(preprocess(v.to(device)))
            logits = model(x) if forward is None else forward(model, x)
        outs.append(logits.float())
    if len(outs) == 1:
        return outs[0], True  # ranking by logits = ranking by softmax; no rounding ties
    return torch.stack([o.softmax(1) for o in outs]).mean(0), False


def _batch_sums(scores: torch.Tensor, are_logits: bool, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 errors, top-5 errors, summed loss, images) of one batch as float64 (N,) sums,
    and its top-1 predictions. ``scores``: (N, classes) logits, or averaged softmax scores."""
    logp = F.log_softmax(scores, 1) if are_logits else scores.clamp_min(1e-12).log()
    topk = scores.topk(min(5, scores.shape[1]), 1).indices
    sums = torch.stack(
        [
            (topk[:, 0] != y).sum().double(),
            (~(topk == y[:, None]).any(1)).sum().double(),
            F.nll_loss(logp, y, reduction="sum").double(),
            torch.tensor(float(len(y)), dtype=torch.float64, device=y.device),
        ]
    )
    return sums, topk[:, 0]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    *,
    views: ViewFn = single_view,
    speed: SpeedSettings = SpeedSettings(),
    device: torch.device | None = None,
    dist: DistInfo = DistInfo(),
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    confusion: bool = False,
) -> dict:
    """Top-1/top-5 error (percent) and mean loss over ``batches`` of (uint8 images, labels).

    Each batch is cut into views (``views``), each view preprocessed (``preprocess``, e.g.
    the stored Normalizer), scored in eval mode; with several views the softmax scores are
    averaged (paper Section 3.4, "we average the scores"). A batch whose images are a
    list is taken as its views already (made per image by a loader, for images of mixed
    sizes). ``forward(model, x)`` replaces ``model(x)`` (e.g. the fully-convolutional
    form). Counts are summed over processes, so each process passes its own share.
    ``confusion``: also "confusion", the (classes x classes) counts of true class (row)
    by top-1 prediction (column).
    """
    was_training = model.training
    model.eval()
    sums = counts = None
    try:
        for x, y in batches:
            dev = device or y.device
            y = y.to(dev)
            vs = x if isinstance(x, (list, tuple)) else views(x.to(dev))
            scores, are_logits = _scores(model, vs, preprocess, speed, dev, forward)
            batch, top1 = _batch_sums(scores, are_logits, y)
            sums = batch if sums is None else sums + batch
            if confusion:
                k2 = scores.shape[1] ** 2
                pairs = torch.bincount(y * scores.shape[1] + top1, minlength=k2).double()
                counts = pairs if counts is None else counts + pairs
    finally:
        model.train(was_training)
    if sums is None:
        sums = torch.zeros(4, dtype=torch.float64, device=device)
    top1, top5, loss, n = dist.all_reduce_sum(sums).tolist()
    n = max(n, 1)
    out = {"top1_err": 100.0 * top1 / n, "top5_err": 100.0 * top5 / n, "loss": loss / n, "images": int(n)}
    if confusion and counts is not None:
        k = int(round(len(counts) ** 0.5))
        out["confusion"] = dist.all_reduce_sum(counts).long().reshape(k, k).tolist()
    return out
