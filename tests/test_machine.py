"""The description stored beside every benchmark figure: the commit must be the code's own. The phase that reached
a process's peak memory."""

import json
import os
import subprocess
import sys

from ppo_bench.common.machine import describe, git_commit


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_names_head_and_marks_a_dirty_tree(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("not code\n")
    assert git_commit(tmp_path) == head  # untracked files do not change what ran
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == "unknown"


def test_describe_reports_missing_libraries_as_none():
    d = describe("numpy", "no_such_library_here")
    assert d["cores"] >= 1 and d["cpu"] and d["python"].count(".") == 2
    assert d["numpy"] == __import__("numpy").__version__
    assert d["no_such_library_here"] is None


def test_peak_phases_names_the_innermost_phase_that_raised_the_peak():
    # in a fresh process: the test process's own peak may already lie above what the phases allocate
    code = """
import json, numpy as np
from ppo_bench.common.machine import PeakPhases, peak_rss_mb
phase, times, seen = PeakPhases(), {}, []
with phase("setup", times, "setup_s"):
    with phase("setup: pairs"):
        a = np.ones(50_000_000); del a          # 400 MB, inside the inner phase
    with phase("setup: reference"):
        pass                                   # raises nothing
seen.append(phase.phase)
with phase("step"):
    with phase("step: generation"):
        pass
    b = np.ones(100_000_000); del b             # 800 MB, in the outer phase after its inner one
seen.append(phase.phase)
with phase("evaluation"):
    pass                                       # below the peak: the step keeps it
seen.append(phase.phase)
print(json.dumps([seen, times["setup_s"] > 0, phase.peak_mb == peak_rss_mb(), sorted(phase.raised)]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    seen, timed, at_peak, raised = json.loads(out)
    assert seen == ["setup: pairs", "step", "step"] and raised == ["setup: pairs", "step"]
    assert timed and at_peak


def test_peak_rss_is_the_process_own_not_its_parents():
    # ru_maxrss of a child started by a large process starts at the parent's size (Linux keeps it through fork and
    # exec): a run started by the LLM comparison or by pytest must not report its parent's peak
    import numpy as np
    import pytest

    from ppo_bench.common.machine import peak_rss_mb

    if not os.path.exists("/proc/self/status"):
        pytest.skip("Linux only")
    big = np.ones(100_000_000)  # 800 MB resident in this process
    try:
        out = subprocess.run([sys.executable, "-c", "from ppo_bench.common.machine import peak_rss_mb; print(peak_rss_mb())"],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    finally:
        del big
    assert peak_rss_mb() > 800
    assert float(out) < 400, out


def test_peak_rss_never_goes_down_and_a_forked_child_starts_afresh(monkeypatch):
    # the kernel's high-water mark is kept lazily and can read lower later (the full suite saw a phase's peak above
    # the run's): the peak reported is the largest reading so far, and a forked child's is its own
    from ppo_bench.common import machine

    readings = iter([100.0, 90.0, 120.0, 5.0])
    monkeypatch.setattr(machine, "_peak_seen", None)
    monkeypatch.setattr(machine, "_read_peak_mb", lambda: next(readings))
    assert [machine.peak_rss_mb() for _ in range(3)] == [100.0, 100.0, 120.0]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first reading (5.0) is its peak, not the parent's 120
        os.write(w, str(machine.peak_rss_mb()).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 64).decode() == "5.0"
    assert machine.peak_rss_mb() == 120.0  # the parent's is unchanged (its next reading, 5.0, is lower)
