"""The paper's learning-rate schedules (Sections 4.2 and 3.4), scaled to any run length.

milestones (CIFAR): lr /10 at fixed fractions of the run (32k and 48k of 64k).
plateau (ImageNet): lr /10 when the held-out error stops improving.
step: lr /10 every ``step_epochs`` epochs (torchvision's reference recipe).
All three start at ``warmup_lr`` while warming up (ResNet-110, Section 4.2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def milestone_iterations(total: int, fractions: tuple[float, ...]) -> list[int]:
    """Paper: 32k and 48k of 64k = fractions 0.5 and 0.75 of the run."""
    return [round(f * total) for f in fractions]


def step_lr(iteration: int, base_lr: float, milestones: list[int], gamma: float = 0.1) -> float:
    """lr at (0-based) ``iteration``: base_lr divided by 10 at each milestone passed."""
    return base_lr * gamma ** sum(iteration >= m for m in milestones)


def lr_at(
    iteration: int,
    *,
    base_lr: float,
    milestones: list[int],
    warming_up: bool,
    warmup_lr: float,
) -> float:
    """The paper's schedule; while ``warming_up`` (110+ layers, training error >= 80%)
    the lr is ``warmup_lr`` (0.01), after which the step schedule resumes at 0.1."""
    if warming_up:
        return min(warmup_lr, step_lr(iteration, base_lr, milestones))
    return step_lr(iteration, base_lr, milestones)


@dataclass
class Plateau:
    """State of the plateau schedule: the best held-out error, evaluations since it
    improved, and how many times the lr has been divided by 10."""

    best: float | None = None
    since_best: int = 0
    drops: int = 0

    def update(self, err: float, patience: int, threshold: float) -> bool:
        """Record one evaluation's held-out top-1 error; True when the lr drops now."""
        if self.best is None or err < self.best - threshold:
            self.best, self.since_best = err, 0
            return False
        self.since_best += 1
        if self.since_best >= patience:
            self.drops += 1
            self.since_best = 0
            self.best = err  # the new lr gets its own patience from here
            return True
        return False

    def state_dict(self) -> dict:
        return asdict(self)


def schedule_milestones(
    kind: str, total: int, fractions: tuple[float, ...], ipe: int, step_epochs: int
) -> list[int]:
    """The iterations at which lr /10 for the fixed schedules (none for plateau)."""
    if kind == "milestones":
        return milestone_iterations(total, fractions)
    if kind == "step":
        k = step_epochs * ipe
        return list(range(k, total, k))
    return []


def current_lr(
    iteration: int,
    *,
    base_lr: float,
    milestones: list[int],
    plateau_drops: int,
    warming_up: bool,
    warmup_lr: float,
) -> float:
    lr = step_lr(iteration, base_lr, milestones) * 0.1**plateau_drops
    return min(warmup_lr, lr) if warming_up else lr
