"""Graceful interruption: SIGINT/SIGTERM finish the current step, then the run writes a
checkpoint and stops with :class:`RunInterrupted` (the CLI prints how to resume).

    with GracefulInterrupt() as stop:
        for step in ...:
            do_step()
            if stop.requested:
                save_checkpoint()
                raise RunInterrupted(stop.describe(...))

A second signal while the first is being handled interrupts at once (``KeyboardInterrupt``).
Handlers are installed only in the main thread and restored on exit.
"""
from __future__ import annotations

import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class RunInterrupted(Exception):
    """A run stopped on SIGINT/SIGTERM after writing a checkpoint. ``exit_code`` is the
    shell convention (128 + signal number)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = EXIT_CODES.get(signum, 1)


class GracefulInterrupt:
    """Context manager that turns the first SIGINT/SIGTERM into a flag."""

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without a checkpoint")
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: finishing the current step, then writing a checkpoint "
              f"(send it again to stop at once)", flush=True)

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def interrupted(self, where: str, resume_hint: str) -> RunInterrupted:
        """The exception to raise once the checkpoint is written."""
        name = signal.Signals(self.signum).name if self.signum else "signal"
        return RunInterrupted(f"{name}: stopped {where}; checkpoint written. Resume with: {resume_hint}",
                              self.signum or signal.SIGINT)
