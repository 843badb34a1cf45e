"""What stops a run, and how it stops: signals, unwritable files, a non-finite loss.

Whatever stops it, the last complete checkpoint stays intact and the message says where
it is and how to continue.
"""

from __future__ import annotations

import signal
import sys
import threading

import torch
import torch.distributed as tdist


class RunError(RuntimeError):
    """Training cannot go on; the message says why and what was kept."""


class Interrupted(RunError):
    """SIGINT or SIGTERM: a checkpoint of the current iteration was written."""

    def __init__(self, signum: int, iteration: int, run_dir, then: str | None = None) -> None:
        """``then``: how to continue (default: resume the run)."""
        self.signum, self.iteration, self.run_dir = signum, iteration, run_dir
        then = then or f"continue with reslearn train --resume {run_dir}"
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at iteration {iteration}; checkpoint written: {then}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopSignals:
    """While active, the first SIGINT/SIGTERM only sets ``received``: the loop finishes its
    step, writes a checkpoint and stops. A second one exits at once (default handlers)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True, world_size: int = 1) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: int | None = None  # by this process
        self.agreed: int | None = None  # the signal every process stops for
        self._previous: dict = {}
        # With several processes the decision to stop is voted, so every process stops after
        # the same step (a signal reaches each at a different moment, or only one of them;
        # one that stopped alone would leave the others in a mismatched collective). The vote
        # runs in a gloo group of its own: on CPU beside NCCL's GPU work, never between the
        # default group's collectives. Its tensor holds the largest signal number seen.
        self._group = tdist.new_group(backend="gloo") if world_size > 1 else None
        self._flag = torch.zeros(1, dtype=torch.int32)
        self._vote: tdist.Work | None = None

    def stop_now(self) -> bool:
        """Asked before every step. One process: whether a signal came. Several: each step
        publishes this process's flag (asynchronously) and reads the previous step's vote, so
        all stop at the same step, one or two steps after the first signal, at no wait."""
        if self._group is None:
            self.agreed = self.received
            return self.received is not None
        if self.agreed is None and self._vote is not None:
            self._collect()
        if self.agreed is not None:
            return True
        self._flag.fill_(self.received or 0)
        self._vote = tdist.all_reduce(self._flag, op=tdist.ReduceOp.MAX, group=self._group, async_op=True)
        return False

    def settle(self) -> int | None:
        """At the end of an interval: the signal every process stops for, or None (a
        blocking vote where the last step's has not decided already)."""
        if self._group is None:
            self.agreed = self.received
            return self.agreed
        if self._vote is not None:
            self._collect()
        if self.agreed is None:
            self._flag.fill_(self.received or 0)
            tdist.all_reduce(self._flag, op=tdist.ReduceOp.MAX, group=self._group)
            self.agreed = int(self._flag.item()) or None
        return self.agreed

    def _collect(self) -> None:
        self._vote.wait()
        self._vote = None
        self.agreed = int(self._flag.item()) or None

    def _handle(self, signum, frame) -> None:
        self.received = signum
        for s in self.SIGNALS:  # the next one is not caught
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
        print(
            f"\nreslearn: {signal.Signals(signum).name}: finishing this step and writing a checkpoint "
            "(send it again to stop at once, without one)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopSignals:
        if self.enabled:
            self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
            for s in self.SIGNALS:
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
