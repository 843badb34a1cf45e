"""The paper's learning-rate schedules (Sections 4.2 and 3.4) as objects, scaled to any run.

Every schedule speaks one protocol (:class:`Schedule`): ``lr(iteration)``,
``observe_step`` (each training step's error count, on the device: the warm-up's),
``observe_eval`` (each evaluation's held-out error: the plateau's), each returning a line
for the log when the lr changes, and ``state_dict``: one place computes the lr, the loop
knows no schedule, and a resumed run continues it exactly. A new schedule is a class with
these methods and an entry in :data:`SCHEDULES`.

- :class:`Milestones` (CIFAR): lr /10 at given iterations (32k and 48k of 64k: the config's
  fractions 0.5 and 0.75 of the run); ``step`` (torchvision's recipe) is milestones every
  ``step_epochs`` epochs.
- :class:`Plateau` (ImageNet): lr /10 when the held-out error stops improving.
- :class:`WarmUp` wraps any of them: lr 0.01 until the training error falls below 80%
  (ResNet-110, Section 4.2), then the wrapped schedule's lr.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..registry import Registry


def milestone_iterations(total: int, fractions: tuple[float, ...]) -> list[int]:
    """Paper: 32k and 48k of 64k = fractions 0.5 and 0.75 of the run."""
    return [round(f * total) for f in fractions]


class Schedule:
    """The protocol, with nothing to observe and no state (what :class:`Milestones` needs)."""

    def lr(self, iteration: int) -> float:
        """lr at (0-based) ``iteration``."""
        raise NotImplementedError

    def observe_step(
        self, errors: torch.Tensor, images: int, iteration: int, all_reduce: Callable
    ) -> str | None:
        """One training step: its error count (a device tensor; sync only when needed),
        ``images`` in it, the iteration after it; ``all_reduce`` sums over processes."""
        return None

    def observe_eval(self, held_out_err: float, iteration: int) -> str | None:
        """One evaluation's held-out top-1 error (%), at ``iteration``."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        pass

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class Milestones(Schedule):
    """lr = ``base_lr`` / 10 per milestone (an iteration) passed; nothing to observe."""

    base_lr: float
    at: list[int]  # iterations

    def lr(self, iteration: int) -> float:
        return self.base_lr * 0.1 ** sum(iteration >= m for m in self.at)

    def describe(self) -> str:
        return f"lr {self.base_lr:g}, /10 at iterations {self.at}"


@dataclass
class Plateau(Schedule):
    """lr = ``base_lr`` / 10 per plateau: ``patience`` evaluations in a row without the
    held-out top-1 error improving by more than ``threshold`` points."""

    base_lr: float
    patience: int = 3
    threshold: float = 0.1
    best: float | None = None
    since_best: int = 0
    drops: int = 0

    def lr(self, iteration: int) -> float:
        return self.base_lr * 0.1**self.drops

    def observe_eval(self, held_out_err: float, iteration: int) -> str | None:
        if self.best is None or held_out_err < self.best - self.threshold:
            self.best, self.since_best = held_out_err, 0
            return None
        self.since_best += 1
        if self.since_best < self.patience:
            return None
        self.drops += 1
        self.since_best = 0
        self.best = held_out_err  # the new lr gets its own patience from here
        return f"held-out error plateaued at {held_out_err:.2f}%: lr /10 from iteration {iteration}"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "since_best": self.since_best, "drops": self.drops}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best, self.since_best, self.drops = d["best"], int(d["since_best"]), int(d["drops"])

    def describe(self) -> str:
        return f"lr {self.base_lr:g}, /10 when the held-out error plateaus ({self.patience} evaluations)"


@dataclass
class WarmUp(Schedule):
    """``inner``'s lr, capped at ``lr_warm`` while ``active``: from the start until the
    training error over a window of ``window_steps`` iterations (summed over processes)
    falls below ``until_err`` percent. The window's errors add up on the device; the host
    reads them once per window."""

    inner: Schedule
    lr_warm: float = 0.01
    until_err: float = 80.0
    window_steps: int = 20
    active: bool = True
    window: dict[str, int] = field(default_factory=lambda: {"err": 0, "n": 0})  # this window so far
    _err: torch.Tensor | None = None  # the window's errors, on the device

    def lr(self, iteration: int) -> float:
        lr = self.inner.lr(iteration)
        return min(self.lr_warm, lr) if self.active else lr

    def observe_step(self, errors, images, iteration, all_reduce) -> str | None:
        if not self.active:
            return None
        if self._err is None:
            self._err = torch.tensor(self.window["err"], device=errors.device, dtype=torch.long)
        self._err += errors
        self.window["n"] += images
        if self.window["n"] < self.window_steps * images:
            return None
        both = torch.tensor([float(self._err.item()), float(self.window["n"])], dtype=torch.float64)
        err, n = all_reduce(both.to(errors.device)).tolist()
        self._err.zero_()
        self.window = {"err": 0, "n": 0}
        if 100.0 * err / max(n, 1) >= self.until_err:
            return None
        self.active = False
        return (
            f"warm-up done at iteration {iteration}: training error below {self.until_err}%, "
            f"lr back to {self.lr(iteration)}"
        )

    def observe_eval(self, held_out_err: float, iteration: int) -> str | None:
        return self.inner.observe_eval(held_out_err, iteration)

    def state_dict(self) -> dict[str, Any]:
        err = int(self._err.item()) if self._err is not None else self.window["err"]
        window = {"err": err, "n": self.window["n"]}
        return {"inner": self.inner.state_dict(), "active": self.active, "window": window}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.inner.load_state_dict(d["inner"])
        self.active = bool(d["active"])
        self.window = {k: int(v) for k, v in d["window"].items()}
        self._err = None

    def describe(self) -> str:
        warm = f"warm-up at lr {self.lr_warm:g} until training error < {self.until_err:g}%"
        return f"{self.inner.describe()}; {warm}"


def _milestones(o, total: int, steps_per_epoch: int) -> Schedule:
    return Milestones(o.lr, milestone_iterations(total, o.milestones))


def _step(o, total: int, steps_per_epoch: int) -> Schedule:
    k = o.step_epochs * steps_per_epoch
    return Milestones(o.lr, list(range(k, total, k)))


def _plateau(o, total: int, steps_per_epoch: int) -> Schedule:
    return Plateau(o.lr, o.plateau_patience, o.plateau_threshold)


# OptimConfig.schedule -> a builder (optim, total iterations, iterations per epoch).
SCHEDULES: Registry[Callable[[Any, int, int], Schedule]] = Registry("schedule", reserved=("auto",))
SCHEDULES.add(_milestones, "milestones")
SCHEDULES.add(_step, "step")
SCHEDULES.add(_plateau, "plateau")


def make_schedule(optim, total: int, steps_per_epoch: int, warm_up: bool) -> Schedule:
    """The schedule a (resolved) OptimConfig asks for, over a run of ``total`` iterations."""
    inner = SCHEDULES[optim.schedule](optim, total, steps_per_epoch)
    if not warm_up:
        return inner
    return WarmUp(inner, optim.warmup_lr, optim.warmup_until_err, optim.warmup_check_every)


def schedule_state_from(train_state: dict[str, Any], schedule: Schedule) -> dict[str, Any]:
    """The schedule's state in a checkpoint's train state, also from checkpoints written
    before schedules were objects (warming_up, warm_window and plateau kept apart)."""
    if "schedule" in train_state:
        return train_state["schedule"]
    old_plateau = {"best": None, "since_best": 0, "drops": 0, **train_state.get("plateau", {})}
    inner = old_plateau if isinstance(getattr(schedule, "inner", schedule), Plateau) else {}
    if isinstance(schedule, WarmUp):
        window = train_state.get("warm_window", {"err": 0, "n": 0})
        return {"inner": inner, "active": train_state.get("warming_up", False), "window": window}
    return inner
