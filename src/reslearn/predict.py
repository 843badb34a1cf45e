"""``reslearn predict``: top-k classes of image files with a trained net."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from .data.cifar import IMAGE_EXTS
from .speed import select_device
from .use import load


def image_files(paths: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for images (sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS and f.is_file())
        else:
            out.append(p)
    return out


def predict_files(checkpoint, paths: list[str], top_k: int = 5, device: str = "auto", batch_size: int = 64):
    """([{"image", "top_k": [{"class", "index", "prob"}]}], [(path, error)]): unreadable
    images are reported, the others predicted."""
    dev = select_device(device)
    model, preprocess, classes = load(checkpoint, dev)
    results, failed, batch = [], [], []

    def flush() -> None:
        if not batch:
            return
        with torch.inference_mode():
            probs = model(torch.stack([x for _, x in batch]).to(dev)).float().softmax(1)
        p, i = probs.topk(min(top_k, probs.shape[1]), 1)
        for (path, _), pr, ix in zip(batch, p.tolist(), i.tolist()):
            top = [{"class": classes[j], "index": j, "prob": q} for q, j in zip(pr, ix)]
            results.append({"image": str(path), "top_k": top})
        batch.clear()

    for path in image_files(paths):
        try:
            with Image.open(path) as im:
                x = preprocess(im)
        except Exception as e:  # unreadable, truncated, not an image, missing
            failed.append((str(path), str(e)))
            continue
        batch.append((path, x))
        if len(batch) == batch_size:
            flush()
    flush()
    return results, failed
