"""The paper's learning-rate schedules (Sections 4.2 and 3.4) as objects, scaled to any run.

Each schedule gives the lr at an iteration, observes what it needs (the held-out error for
the plateau schedule, the training error for the warm-up) and has its own ``state_dict``:
one place computes the lr, and a resumed run continues it exactly.

- :class:`Milestones` (CIFAR): lr /10 at given iterations (32k and 48k of 64k: the config's
  fractions 0.5 and 0.75 of the run); ``step`` (torchvision's recipe) is milestones every
  ``step_epochs`` epochs.
- :class:`Plateau` (ImageNet): lr /10 when the held-out error stops improving.
- :class:`WarmUp` wraps any of them: lr 0.01 until the training error falls below 80%
  (ResNet-110, Section 4.2), then the wrapped schedule's lr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def milestone_iterations(total: int, fractions: tuple[float, ...]) -> list[int]:
    """Paper: 32k and 48k of 64k = fractions 0.5 and 0.75 of the run."""
    return [round(f * total) for f in fractions]


@dataclass
class Milestones:
    """lr = ``base_lr`` / 10 per milestone (an iteration) passed; nothing to observe."""

    base_lr: float
    at: list[int]  # iterations

    def lr(self, iteration: int) -> float:
        """lr at (0-based) ``iteration``."""
        return self.base_lr * 0.1 ** sum(iteration >= m for m in self.at)

    def observe(self, held_out_err: float) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        pass

    def describe(self) -> str:
        return f"lr {self.base_lr:g}, /10 at iterations {self.at}"


@dataclass
class Plateau:
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

    def observe(self, held_out_err: float) -> bool:
        """Record one evaluation's held-out top-1 error; True when the lr drops now."""
        if self.best is None or held_out_err < self.best - self.threshold:
            self.best, self.since_best = held_out_err, 0
            return False
        self.since_best += 1
        if self.since_best >= self.patience:
            self.drops += 1
            self.since_best = 0
            self.best = held_out_err  # the new lr gets its own patience from here
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "since_best": self.since_best, "drops": self.drops}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best, self.since_best, self.drops = d["best"], int(d["since_best"]), int(d["drops"])

    def describe(self) -> str:
        return f"lr {self.base_lr:g}, /10 when the held-out error plateaus ({self.patience} evaluations)"


@dataclass
class WarmUp:
    """``inner``'s lr, capped at ``lr_warm`` while ``active``: from the start until the
    training error over a window of ``window_steps`` iterations falls below ``until_err``
    percent (the caller sums each window's errors and calls :meth:`end_window`)."""

    inner: Milestones | Plateau
    lr_warm: float = 0.01
    until_err: float = 80.0
    window_steps: int = 20
    active: bool = True
    window: dict[str, int] = field(default_factory=lambda: {"err": 0, "n": 0})  # this window so far

    def lr(self, iteration: int) -> float:
        lr = self.inner.lr(iteration)
        return min(self.lr_warm, lr) if self.active else lr

    def observe(self, held_out_err: float) -> bool:
        return self.inner.observe(held_out_err)

    def end_window(self, err: int, n: int) -> bool:
        """The training errors of a whole window (summed over processes); True when the
        warm-up ends now."""
        self.window = {"err": 0, "n": 0}
        if self.active and 100.0 * err / max(n, 1) < self.until_err:
            self.active = False
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "active": self.active, "window": dict(self.window)}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.inner.load_state_dict(d["inner"])
        self.active = bool(d["active"])
        self.window = {k: int(v) for k, v in d["window"].items()}

    def describe(self) -> str:
        warm = f"warm-up at lr {self.lr_warm:g} until training error < {self.until_err:g}%"
        return f"{self.inner.describe()}; {warm}"


Schedule = Milestones | Plateau | WarmUp


def make_schedule(optim, total: int, steps_per_epoch: int, warm_up: bool) -> Schedule:
    """The schedule a (resolved) OptimConfig asks for, over a run of ``total`` iterations."""
    o = optim
    if o.schedule == "plateau":
        inner: Milestones | Plateau = Plateau(o.lr, o.plateau_patience, o.plateau_threshold)
    elif o.schedule == "step":
        k = o.step_epochs * steps_per_epoch
        inner = Milestones(o.lr, list(range(k, total, k)))
    else:
        inner = Milestones(o.lr, milestone_iterations(total, o.milestones))
    if not warm_up:
        return inner
    return WarmUp(inner, o.warmup_lr, o.warmup_until_err, o.warmup_check_every)


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
