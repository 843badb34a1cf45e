"""``reslearn predict``: top-k classes of image files with a trained net."""

from __future__ import annotations

from pathlib import Path

import torch

from .data.imagefiles import IMAGE_EXTS
from .files import max_pixels, open_image
from .speed import select_device
from .use import load


def image_files(paths: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for images (sorted; hidden files and
    folders skipped). A folder with no image is an error naming it."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in IMAGE_EXTS
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise ValueError(f"no image files ({', '.join(sorted(IMAGE_EXTS))}) in the folder {str(p)!r}")
            out += found
        else:
            out.append(p)
    return out


TOP_K = 5  # classes listed per image
BATCH_SIZE = 64  # images per forward pass


def predict_files(
    checkpoint, paths: list[str], top_k: int = TOP_K, device: str = "auto", batch_size: int = BATCH_SIZE
):
    """([{"image", "top_k": [{"class", "index", "prob"}]}], [(path, error)]): unreadable
    images are reported, the others predicted."""
    dev = select_device(device)
    max_pixels()  # a bad RESLEARN_MAX_PIXELS is one error, not one per image
    files = image_files(paths)  # before loading: a bad path costs nothing
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

    for path in files:
        try:
            with open_image(path) as im:
                x = preprocess(im)
        except Exception as e:  # unreadable, truncated, not an image, missing
            failed.append((str(path), str(e)))
            continue
        batch.append((path, x))
        if len(batch) == batch_size:
            flush()
    flush()
    return results, failed
