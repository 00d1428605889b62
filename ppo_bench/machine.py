"""What a benchmark or reference run was measured on: the machine, the libraries, the code's commit.

Every timing in ``results/`` is stored beside ``describe()``, so that a figure can be traced to the
hardware and to the exact code that produced it (README, "Throughput")."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
