"""Stopping a training process on request without losing work (a cluster's preemption or time limit,
Ctrl-C): the signal is noted, the trainer finishes its iteration, checkpoints every run and raises
``Interrupted``; the command line then prints the command that resumes them."""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(Exception):
    """Training stopped on request (SIGTERM/SIGINT) with every run checkpointed."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # what the shell reports for a process killed by that signal


class StopRequest:
    """While active, SIGTERM and SIGINT (a cluster's preemption or time limit, Ctrl-C) only set
    ``signal``: the trainer finishes its iteration and checkpoints every run instead of dying
    mid-iteration and losing what it did since the last checkpoint. A second signal acts at once
    (the previous handler), except while the final checkpoints are written (``deferred``).
    Outside the main thread signals cannot be caught; nothing is installed."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal: signal.Signals | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            prev = self._previous.get(signum)
            signal.signal(signum, prev if prev is not None else signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.signal = signal.Signals(signum)

    @contextlib.contextmanager
    def deferred(self):
        """Signals arriving meanwhile wait until the block ends (so a second SIGTERM, e.g. a process
        pool tearing down its workers, cannot cut the final checkpoints short)."""
        if not self._previous or not hasattr(signal, "pthread_sigmask"):
            yield
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
