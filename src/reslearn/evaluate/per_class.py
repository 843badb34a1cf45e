"""Per-class results of an evaluation: each class's error, the most confused pairs, and the
confusion matrix as JSON and as a heat map (``reslearn eval --per-class``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write_text

CONFUSION_FILES = ("confusion.json", "confusion.png")


def class_errors(matrix: list[list[int]], classes: list[str]) -> list[dict]:
    """[{"class", "images", "err"}] in class order; err in percent (None: no image of it)."""
    out = []
    for i, (name, row) in enumerate(zip(classes, matrix)):
        n = sum(row)
        out.append({"class": name, "images": n, "err": 100.0 * (n - row[i]) / n if n else None})
    return out


def confused_pairs(matrix: list[list[int]], classes: list[str], top: int = 10) -> list[dict]:
    """The ``top`` most frequent mistakes: {"true", "predicted", "count", "share"} (share: of
    the true class's images, percent), most frequent first."""
    pairs = [
        {"true": classes[i], "predicted": classes[j], "count": c, "share": 100.0 * c / sum(row)}
        for i, row in enumerate(matrix)
        for j, c in enumerate(row)
        if i != j and c
    ]
    return sorted(pairs, key=lambda p: (-p["count"], p["true"], p["predicted"]))[:top]


def format_per_class(res: dict) -> str:
    """The lines ``reslearn eval --per-class`` prints."""
    rows = class_errors(res["confusion"], res["classes"])
    width = max(5, *(len(r["class"]) for r in rows))
    lines = [f"{'class':<{width}}  images  top-1 error"]
    lines += [
        f"{r['class']:<{width}}  {r['images']:>6}  "
        + (f"{r['err']:10.2f}%" if r["err"] is not None else "         -")
        for r in rows
    ]
    pairs = confused_pairs(res["confusion"], res["classes"])
    if pairs:
        lines.append("most confused (true -> predicted: images, share of the true class):")
        lines += [f"  {p['true']} -> {p['predicted']}: {p['count']} ({p['share']:.1f}%)" for p in pairs]
    return "\n".join(lines)


def confusion_paths(checkpoint: Path, overwrite: bool) -> list[Path]:
    """Where --per-class writes: beside the checkpoint (the run directory). A file there
    that a run reslearn made did not write (no .reslearn-run marker) is replaced only with
    ``overwrite``."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    paths = [folder / n for n in CONFUSION_FILES]
    ours = (folder / ".reslearn-run").is_file()
    taken = [p for p in paths if p.exists()]
    if taken and not ours and not overwrite:
        raise ValueError(
            f"{str(taken[0])!r} exists and reslearn did not write it (no run here): "
            f"replace it with --overwrite, or evaluate a copy of the checkpoint elsewhere"
        )
    return paths


def write_confusion(res: dict, paths: list[Path]) -> None:
    """confusion.json (the matrix, rows true class, columns predicted, with the per-class
    errors) and confusion.png (the matrix as a heat map, each row as shares of its class)."""
    doc = {k: res[k] for k in ("model", "iteration", "split", "views", "data", "classes")}
    doc.update(rows="true class", columns="predicted class", matrix=res["confusion"])
    doc["per_class"] = class_errors(res["confusion"], res["classes"])
    atomic_write_text(paths[0], json.dumps(doc, indent=1) + "\n")
    _heat_map(res, paths[1])


def _heat_map(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(res["confusion"], dtype=float)
    shares = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(m)
    fig, ax = plt.subplots(figsize=(min(3 + 0.35 * k, 16),) * 2)
    im = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1)
    if k <= 40:  # names stay readable up to about this many classes
        ax.set_xticks(range(k), res["classes"], rotation=90, fontsize=7)
        ax.set_yticks(range(k), res["classes"], fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{res['model']} @ {res['iteration']}: {res['split']}, top-1 error {res['top1_err']:.2f}%")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
