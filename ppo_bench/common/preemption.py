"""Stopping a training process on request without losing work (a cluster's preemption or time limit,
Ctrl-C): the signal is noted, the trainer finishes its iteration, checkpoints every run and raises
``Interrupted``; the command line then prints the command that resumes them.

On Slurm through submitit (``hydra/launcher=submitit_slurm``) the job's time limit and a preemption arrive as
``SIGUSR2``, which submitit handles itself: it requeues the job and exits at once, wherever training is. Left
alone, that loses every iteration since the last periodic checkpoint (up to ``checkpoint_every``). So a
``SIGUSR1``/``SIGUSR2`` that some Python code already handles is deferred like ``SIGTERM``, and once every run
is checkpointed, that handler gets it: submitit requeues a job that has lost nothing (docs/cluster.md)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading


class Interrupted(Exception):
    """Training stopped on request (SIGTERM/SIGINT/SIGHUP) with every run checkpointed."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # what the shell reports for a process killed by that signal


class StopRequest:
    """While active, SIGTERM, SIGINT and SIGHUP (a cluster's preemption or time limit, Ctrl-C, a dropped ssh
    session) only set
    ``signal``: the trainer finishes its iteration and checkpoints every run instead of dying
    mid-iteration and losing what it did since the last checkpoint. A second signal acts at once
    (the previous handler), except while the final checkpoints are written (``deferred``).

    SIGUSR1 and SIGUSR2 are caught only where a Python handler is installed for them (submitit's
    ``checkpoint_and_try_requeue``, for a time limit near or a preemption): they stop training the same way,
    and that handler is called with the signal when the block ends, after the checkpoints (``handed_over``).
    Outside the main thread signals cannot be caught; nothing is installed."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # SIGHUP: the terminal's ssh session dropped
    LAUNCHER_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self):
        self.signal: signal.Signals | None = None
        self.handed_over: signal.Signals | None = None  # a launcher's signal, for its handler once checkpointed
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        sig = signal.Signals(signum)
        if sig in self.LAUNCHER_SIGNALS:  # never at once: its handler (a requeue) comes after the checkpoints
            self.handed_over = self.handed_over or sig
            self.signal = self.signal or sig
            return
        if self.signal is not None:
            prev = self._previous.get(signum)
            signal.signal(signum, prev if prev is not None else signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.signal = sig

    @contextlib.contextmanager
    def deferred(self):
        """Signals arriving meanwhile wait until the block ends (so a second SIGTERM, e.g. a process
        pool tearing down its workers, cannot cut the final checkpoints short)."""
        if not self._previous or not hasattr(signal, "pthread_sigmask"):
            yield
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, list(self._previous))
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
            for s in self.LAUNCHER_SIGNALS:
                if callable(signal.getsignal(s)):
                    self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
        if self.handed_over is not None and (exc is None or isinstance(exc, Interrupted)):
            handler = self._previous[self.handed_over]
            name = getattr(handler, "__qualname__", repr(handler))
            print(f"{exc or 'training ended'}; {self.handed_over.name} now goes to its handler {name}",
                  file=sys.stderr, flush=True)
            handler(int(self.handed_over), None)  # submitit's requeues the job and exits (SystemExit)
