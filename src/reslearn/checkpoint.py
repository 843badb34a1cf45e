"""Checkpoints: one definition of what they hold, one writer, one reader.

A checkpoint is a dict of plain types and tensors only (no pickled classes), read with
``torch.load(weights_only=True)``: a file that would run code on load is refused. The
format is versioned. This module is the run format's neutral home: training writes it,
evaluation and ``reslearn.use`` read it, and it imports neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .files import atomic_torch_save
from .models import get_model_spec
from .models.zoo import IMAGENET_LAYERS
from .rundir import LAST, PREV

CHECKPOINT_FORMAT = "reslearn-checkpoint"
# 3: the net's spec and create_model options are derived from the config and the classes,
# not stored beside them. 2 (which stored them too) is still read.
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, unsafe or of an unknown format."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under torch.compile / DDP wrappers (no ``_orig_mod.`` prefixes)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
    )


def git_commit() -> str | None:
    """Short commit of the reslearn checkout, "-dirty" when tracked files differ; None
    outside a git checkout (an installed wheel). Call it on the main process only."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = _git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


MODEL_OPTIONS = ("shortcut", "variant", "zero_init_residual", "init_mode")  # of config["model"]


def model_options(config: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """The ``create_model`` keyword options of a run's config (a dict, as saved)."""
    m = config["model"]
    return {"num_classes": num_classes, **{k: m.get(k) for k in MODEL_OPTIONS}}


@dataclass
class Checkpoint:
    """Everything needed to resume a run exactly or to deploy its model.

    model: the unwrapped state dict. classes: the output classes' names. preprocessing:
    the Normalizer's state ({"mean", "std"} tensors). config: the resolved TrainConfig as
    a dict. train_state: TrainState.state_dict(). optimizer: its state dict. provenance:
    version, git commit, data source, device. The net's spec and ``create_model`` options
    follow from the config and the classes (:func:`model_options`), so are not stored.
    """

    model: dict[str, torch.Tensor]
    classes: list[str]
    preprocessing: dict[str, torch.Tensor]
    config: dict[str, Any]
    train_state: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    @property
    def spec(self) -> dict[str, Any]:
        return get_model_spec(self.model_name).to_dict()

    @property
    def model_options(self) -> dict[str, Any]:
        return model_options(self.config, len(self.classes))

    @property
    def iteration(self) -> int:
        return int(self.train_state.get("iteration", 0))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **d}  # + "digest" on save

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "checkpoint") -> Checkpoint:
        names = [f.name for f in fields(cls)]  # format, format_version and digest are the file's
        missing = [n for n in names[:4] if n not in d]
        if missing:
            raise CheckpointError(f"{where} lacks {missing}: not a complete reslearn checkpoint")
        return cls(**{n: d[n] for n in names if n in d})


def digest(d: Any, h=None) -> str:
    """SHA-256 over a checkpoint's content (tensor bytes, shapes, dtypes, plain values, in
    key order): a flipped bit anywhere in what was saved changes it."""
    h = h or hashlib.sha256()
    if isinstance(d, dict):
        for k in sorted(d, key=str):
            if k != "digest":
                h.update(f"<{k}>".encode())
                digest(d[k], h)
    elif isinstance(d, (list, tuple)):
        h.update(f"[{len(d)}".encode())
        for v in d:
            digest(v, h)
    elif isinstance(d, torch.Tensor):
        t = d.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(d).encode())
    return h.hexdigest()


def save_checkpoint(path: str | Path, ckpt: Checkpoint, keep_previous: bool = True) -> None:
    """Write atomically (temporary file, fsync, rename): a kill never leaves half a file.
    The file carries a digest of its content; the checkpoint it replaces stays as
    ``prev.pt`` beside it, so a damaged last.pt still leaves a good one."""
    path = Path(path)
    d = ckpt.to_dict()
    d["digest"] = digest(d)
    if keep_previous and path.is_file():
        prev = path.with_name("prev.pt")
        tmp = path.with_name(f".{prev.name}.link")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)  # last.pt stays in place: at every moment one of them is whole
        except OSError:
            import shutil

            shutil.copyfile(path, tmp)
        os.replace(tmp, prev)
    atomic_torch_save(d, path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory holding last.pt."""
    p = Path(path).expanduser()
    if p.is_dir():
        if not (p / LAST).is_file() and (p / PREV).is_file():
            raise CheckpointError(
                f"{str(p)!r} has no last.pt, only the checkpoint before it (its last save did not "
                f"finish): name that file, {p / PREV}, where you named the run"
            )
        p = p / LAST
    if not p.is_file():
        raise CheckpointError(
            f"no checkpoint at {str(path)!r} (expected a .pt file or a run dir with last.pt)"
        )
    return p


def _offer_previous(p: Path) -> str:
    prev = p.with_name("prev.pt")
    if p.name != "prev.pt" and prev.is_file():
        return f"; the previous checkpoint {str(prev)!r} may be intact: use it with --resume {prev}"
    return ""


def _not_a_checkpoint(p: Path) -> str | None:
    """Why ``p`` cannot be a torch checkpoint, from its first bytes, or None."""
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch's zip format, or a raw pickle
        return None
    if len(head) >= 9 and head[8:9] == b"{":
        return "is a safetensors file (weights only): use it with predict, eval or export, not --resume"
    return "is not a PyTorch file at all"


def torch_says(e: Exception) -> str:
    """The first line of an error torch raised, fit to show a user: terminal colour codes
    removed, and nothing at all where torch's text advises ``weights_only=False`` (that
    switches off the check that keeps a file from running code: never reslearn's advice)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(e)).strip()
    first = text.splitlines()[0][:200] if text else ""
    if not first or "weights_only" in text:
        return type(e).__name__
    return first


def _unsafe(p: Path, e: Exception) -> CheckpointError:
    """The refusal of a pickle that would call code: what happened and what to do,
    never how to switch the check off."""
    import re

    m = re.search(r"GLOBAL ([\w.]+)", str(e))
    what = f"({m.group(1)}) " if m else ""
    return CheckpointError(
        f"{str(p)!r} was refused and not loaded: it holds Python objects that loading would have to "
        f"execute {what}(a reslearn checkpoint holds tensors and plain values only, and a file from "
        f"an untrusted source could run commands this way). If the run is yours, export its weights "
        f"from a trusted copy with `reslearn export RUN --format safetensors`"
    )


def _torch_load(p: Path, what: str, then: str = "", map_location="cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: a file that asks for code is refused
    (:func:`_unsafe`), any other failure is "P is not WHAT" with torch's reason; ``then``
    ends the message (where to look next)."""
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # a class or function the file asks to be called
            raise _unsafe(p, e) from None
        raise CheckpointError(f"{str(p)!r} is not {what}{then}") from None  # a damaged or foreign pickle
    except Exception as e:  # truncated, corrupted, not a torch file
        raise CheckpointError(f"{str(p)!r} is not {what}: {torch_says(e)}{then}") from e


def load_checkpoint(path: str | Path, map_location="cpu") -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``), checked against its digest."""
    p = resolve_checkpoint(path)
    why = _not_a_checkpoint(p)
    if why is not None:
        raise CheckpointError(f"{str(p)!r} is not a reslearn checkpoint: it {why}{_offer_previous(p)}")
    raw = _torch_load(p, "a readable checkpoint (truncated or corrupted?)", _offer_previous(p), map_location)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{str(p)!r} is not a reslearn checkpoint")
    if raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(p)!r} is not a reslearn checkpoint")
    version = raw.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{str(p)!r} has checkpoint format version {version!r}; this reslearn reads "
            f"{FORMAT_VERSION}: upgrade reslearn to read it"
        )
    if "digest" in raw and digest(raw) != raw["digest"]:
        raise CheckpointError(
            f"{str(p)!r} is corrupted: its content does not match its digest{_offer_previous(p)}"
        )
    return Checkpoint.from_dict(raw, repr(str(p)))


# ---------------------------------------------------------------- weights written elsewhere
# A safetensors export's metadata: format 1 (three entries: format, classes, config as JSON
# strings) was written until 2026-11-30 and is still read; format 2 is one entry, "reslearn".
SAFETENSORS_FORMAT = "reslearn-safetensors/2"


def read_safetensors(p: Path) -> Checkpoint:
    """An export as a Checkpoint (weights, classes, preprocessing, config): no pickle."""
    from safetensors import safe_open

    if not p.is_file():
        raise CheckpointError(f"no file at {str(p)!r}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors' own text ("header too large") says little to a user
        with open(p, "rb") as fh:
            head = fh.read(4)
        what = (
            "it is a PyTorch (zip) file: name it .pt"
            if head.startswith(b"PK")
            else "it is damaged, truncated or of another format"
        )
        raise CheckpointError(f"{str(p)!r} is not a readable safetensors file: {what}") from e
    try:
        if "reslearn" in meta:  # format 2: one JSON entry
            meta = json.loads(meta["reslearn"])
        elif meta.get("format") == "reslearn-safetensors/1":  # three entries, two of them JSON
            meta = {**meta, "classes": json.loads(meta["classes"]), "config": json.loads(meta["config"])}
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{str(p)!r} has unreadable reslearn metadata: {e!r}") from e
    if not isinstance(meta, dict) or meta.get("format") not in ("reslearn-safetensors/1", SAFETENSORS_FORMAT):
        raise CheckpointError(f"{str(p)!r} was not written by reslearn export (no reslearn metadata)")
    part = {
        pre: {k[len(pre) + 1 :]: v for k, v in tensors.items() if k.startswith(pre + ".")}
        for pre in ("model", "preprocessing")
    }
    state = {"iteration": int(meta["iteration"])} if meta.get("iteration") is not None else {}
    return Checkpoint(part["model"], meta["classes"], part["preprocessing"], meta["config"], state)


def read_torchvision_weights(p: Path) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict (.pth), read safely (tensors only)."""
    state = _torch_load(p, "a readable (safe) torchvision weights file")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{str(p)!r} holds a {type(state).__name__}, not a state dict (parameter name -> tensor) "
            f"of a torchvision ResNet"
        )
    return state


def torchvision_arch(state: dict) -> str | None:
    """The torchvision ResNet (resnet18 ... resnet152) whose state dict this is, by its
    blocks per stage and block kind, or None."""
    blocks = [len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    known = {(layers, kind == "bottleneck"): f"resnet{d}" for d, (kind, layers) in IMAGENET_LAYERS.items()}
    return known.get((tuple(blocks), bottleneck))
