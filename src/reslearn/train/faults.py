"""What stops a run, and how it stops: signals, unwritable files, a non-finite loss.

Whatever stops it, the last complete checkpoint stays intact and the message says where
it is and how to continue.
"""

from __future__ import annotations

import signal
import sys
import threading


class RunError(RuntimeError):
    """Training cannot go on; the message says why and what was kept."""


class Interrupted(RunError):
    """SIGINT or SIGTERM: a checkpoint of the current iteration was written."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopSignals:
    """While active, the first SIGINT/SIGTERM only sets ``received``: the loop finishes its
    step, writes a checkpoint and stops. A second one exits at once (default handlers)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received: int | None = None
        self._previous: dict = {}

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
