"""The training state: everything about a run's progress that a checkpoint must restore."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Meters:
    """Sums over the current reporting interval (since the last evaluation)."""

    loss: float = 0.0  # sum of per-step mean losses
    err: int = 0  # misclassified training samples
    n: int = 0  # training samples seen
    steps: int = 0
    train_time: float = 0.0  # seconds spent in training steps (evaluations excluded)
    skipped: int = 0  # batches skipped for a non-finite loss (--nan-policy skip-batch)

    def add(self, loss: float, err: int, n: int, steps: int, seconds: float) -> None:
        self.loss += loss
        self.err += err
        self.n += n
        self.steps += steps
        self.train_time += seconds

    def summary(self) -> dict[str, float]:
        return {
            "loss": self.loss / max(1, self.steps),
            "train_err": 100.0 * self.err / max(1, self.n),
            "images_per_s": self.n / max(self.train_time, 1e-9),
        }


@dataclass
class TrainState:
    """Where a run is: iteration, meters, wall time; with the RNG states on save (the lr
    schedule's state travels beside it, as ``schedule``).

    The data order needs no state of its own: it is a function of (seed, epoch) and the
    iteration. The augmentation generator belongs to the data and travels as ``data``.
    """

    iteration: int = 0
    meters: Meters = field(default_factory=Meters)
    wall_s: float = 0.0
    """Wall time of the run before the current session (resumes add up)."""

    def state_dict(self, data_state: dict[str, Any]) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "meters": asdict(self.meters),
            "wall_s": self.wall_s,
            "rng": capture_rng(),
            "data": data_state,
        }

    def load_state_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        """Restore; returns the data state for the data object to load."""
        self.iteration = int(d["iteration"])
        self.meters = Meters(**d["meters"])
        self.wall_s = float(d["wall_s"])
        restore_rng(d["rng"])
        return d["data"]


def capture_rng() -> dict[str, Any]:
    """The global RNG states as tensors and plain types (no numpy objects: weights_only)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
