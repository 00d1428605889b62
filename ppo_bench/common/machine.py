"""What a benchmark or reference run was measured on: the machine, the libraries, the code's commit; and the
process's peak memory, with the phase of a run that reached it.

Every timing in ``results/`` is stored beside ``describe()``, so that a figure can be traced to the
hardware and to the exact code that produced it (docs: "Benchmarks")."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ppo_bench.common.paths import SOURCE_TREE

REPO = SOURCE_TREE


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(repo: Path = REPO) -> str:
    """HEAD's commit, with ``+dirty`` when tracked files differ from it; ``unknown`` outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def describe(*libraries: str) -> dict:
    """Cores, CPU model, platform, Python, the commit, and the version of each library named
    (``None`` for one that is not installed)."""
    out = {"cores": os.cpu_count(), "cpu": cpu_model(), "platform": platform.platform(),
           "python": platform.python_version(), "commit": git_commit()}
    for name in libraries:
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = None
    return out


def _read_peak_mb() -> float | None:
    """The kernel's figure for this process's peak resident memory, in MB (see ``peak_rss_mb``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


_peak_seen: float | None = None  # the largest reading of this process so far


def _forget_peak_seen() -> None:
    global _peak_seen
    _peak_seen = None


os.register_at_fork(after_in_child=_forget_peak_seen)  # a forked child's peak is its own, as after exec


def peak_rss_mb() -> float | None:
    """The process's peak resident memory so far, in MB; None where it is not known (Windows). On Linux the
    memory's high-water mark (VmHWM): the process's own, where ru_maxrss also keeps the peak of the parent that
    started it (Linux carries it through fork and exec), so that a run started by a large process would report
    that process's size. Elsewhere ru_maxrss (macOS). Both can read lower than an earlier reading (the kernel
    records the high-water mark lazily: memory released or reclaimed in between may never have been counted), so
    this returns the largest reading so far: a peak never goes down."""
    global _peak_seen
    now = _read_peak_mb()
    if now is not None:
        _peak_seen = now if _peak_seen is None else max(_peak_seen, now)
    return _peak_seen


class PeakPhases:
    """Which phase of a run reached the process's peak resident memory. The peak (``peak_rss_mb``) only rises; a
    phase that ends above where it began raised it, and the innermost such phase is kept with the new peak. Phases
    nest (``"setup"`` around ``"setup: pairs"``); ``times`` adds each phase's seconds under a key the caller names.
    ``raised`` keeps, for every phase that raised the peak, the peak it left: a later phase that nudged it up by a
    few MB does not hide the one that took it most of the way."""

    def __init__(self) -> None:
        self.raised: dict[str, float] = {}  # phase → the peak (MB) it raised the process's peak to

    @property
    def peak_mb(self) -> float | None:
        """This process's peak when a phase last saw it rise (each claim is above every earlier one)."""
        return max(self.raised.values(), default=None)

    @property
    def phase(self) -> str | None:
        """The phase during which the peak rose to ``peak_mb``."""
        return max(self.raised, key=self.raised.get, default=None)

    @contextmanager
    def __call__(self, name: str, times: dict[str, float] | None = None, key: str | None = None):
        before, t = peak_rss_mb(), time.perf_counter()
        try:
            yield
        finally:
            if times is not None and key is not None:
                times[key] = times.get(key, 0.0) + time.perf_counter() - t
            after = peak_rss_mb()
            # a rise an inner phase already claimed (the peak is where it left it) stays the inner phase's
            if after is not None and (before is None or after > before) and after != self.peak_mb:
                self.raised[name] = after
