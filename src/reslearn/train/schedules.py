"""The paper's CIFAR learning-rate schedule (Section 4.2), scaled to any run length."""

from __future__ import annotations


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
