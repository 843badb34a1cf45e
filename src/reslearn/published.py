"""Trained nets published with reslearn: ``reslearn.load("resnet56-cifar10-jpeg")``,
``torch.hub.load(..., "resnet56", pretrained=True)``, ``reslearn zoo``.

Each net is a safetensors export (no pickle) in ``reslearn/weights/`` listed in
``weights/index.json`` with its sha256 and its measured test error; a file whose sha256
differs from the index is refused, never loaded. ``benchmarks/studies/publish_net.py`` exports a
finished run, measures it and adds its entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_safetensors, resolve_checkpoint

WEIGHTS_DIR = Path(__file__).parent / "weights"


def index(weights_dir: Path | None = None) -> list[dict]:
    """The published nets: [{"name", "model", "dataset", "file", "sha256", "test_err", ...}]."""
    path = (weights_dir or WEIGHTS_DIR) / "index.json"
    if not path.is_file():
        return []
    try:
        nets = json.loads(path.read_text())["nets"]
        if not all(
            isinstance(e, dict) and {"name", "model", "file", "sha256", "test_err"} <= set(e) for e in nets
        ):
            raise TypeError("an entry lacks name, model, file, sha256 or test_err")
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{str(path)!r}, the index of the published nets, is damaged ({type(e).__name__}); "
            f"reinstall reslearn"
        ) from None
    return nets


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def find(name: str, weights_dir: Path | None = None) -> dict | None:
    """The entry called ``name`` ("resnet56-cifar10-jpeg"), or None."""
    return next((e for e in index(weights_dir) if e["name"] == name), None)


def published_file(name: str, weights_dir: Path | None = None) -> Path:
    """The verified file of the published net ``name``: a missing file or a sha256 that is
    not the index's is an error (a damaged or replaced file is never loaded)."""
    entry = find(name, weights_dir)
    if entry is None:
        known = ", ".join(e["name"] for e in index(weights_dir)) or "none yet"
        raise ValueError(f"no published net called {name!r} (published: {known}; `reslearn zoo` lists them)")
    path = (weights_dir or WEIGHTS_DIR) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"the published net {name!r} is listed but its file {str(path)!r} is missing")
    got = sha256(path)
    if got != entry["sha256"]:
        raise CheckpointError(
            f"{str(path)!r} does not match its published sha256 ({got[:16]}... instead of "
            f"{entry['sha256'][:16]}...): refused; reinstall reslearn or fetch the file again"
        )
    return path


def on_originals(entry: dict) -> bool:
    """Trained on the original CIFAR-10 (the official python batches), not a lossy copy."""
    return entry.get("data", "").startswith("pickle:cifar-10")


def rank(entry: dict) -> tuple[bool, float]:
    """Best first: nets trained on the original CIFAR-10 before those trained on a copy,
    then by the error on the original test set (``test_err_original`` where the net's own
    test set was another)."""
    return (not on_originals(entry), entry.get("test_err_original", entry["test_err"]))


def for_model(model: str, weights_dir: Path | None = None) -> dict | None:
    """The published net of architecture ``model`` for torch.hub: the best (:func:`rank`)."""
    nets = [e for e in index(weights_dir) if e["model"] == model]
    return min(nets, key=rank) if nets else None


# ---------------------------------------------------------------- any trained net
def trained_file(source: str | Path) -> Path:
    """The file a trained net is read from, given as a user names it: a reslearn checkpoint
    or a run directory (its last.pt), a safetensors export, or a published net's name (its
    file, sha256 checked). What every command that reads a net (load, predict, eval, export,
    --init) accepts."""
    p = Path(source).expanduser()
    if not p.exists() and isinstance(source, str) and find(source):
        return published_file(source)
    if not p.exists():
        names = ", ".join(e["name"] for e in index()) or "none yet"
        raise CheckpointError(
            f"nothing at {str(source)!r}: give a run directory, a .pt checkpoint, a .safetensors "
            f"export or a published net's name ({names}; `reslearn zoo`)"
        )
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise CheckpointError(f"no file at {str(source)!r}")
        return p
    return resolve_checkpoint(p)


def read_trained(source: str | Path) -> Checkpoint:
    """The net at ``source`` (see :func:`trained_file`): weights, classes, preprocessing,
    config; the training state only from a checkpoint, the iteration from an export too."""
    p = trained_file(source)
    return read_safetensors(p) if p.suffix == ".safetensors" else load_checkpoint(p)
