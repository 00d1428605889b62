"""The cluster tests run against the single-node Slurm of scripts/local_slurm.sh (CI starts it: .ci/run). Where
none answers they are skipped, with the reason in pytest's summary. PPO_BENCH_SLURM_TESTS=1 runs them on whatever
Slurm answers here (they submit a dozen small jobs to its default partition)."""

import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MARK = "# written by ppo-bench scripts/local_slurm.sh"


def why_no_slurm() -> str | None:
    """None where the cluster tests can run; else why not, in one line."""
    try:
        # 5 s: a Slurm that answers does so at once; sinfo retries a controller that is down for 10 s
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no Slurm answers here (sinfo: {e.strerror if isinstance(e, OSError) else 'no answer in 5 s'})"
    if out.returncode != 0:
        return f"no Slurm answers here (sinfo: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode})"
    if not {"idle", "mixed", "allocated", "completing"} & set(out.stdout.split()):
        return f"Slurm answers but has no node to run on (sinfo: {' '.join(sorted(set(out.stdout.split())))})"
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    ours = conf.is_file() and MARK in conf.read_text(errors="replace")
    if not ours and os.environ.get("PPO_BENCH_SLURM_TESTS") != "1":
        return f"the Slurm here is not scripts/local_slurm.sh's ({conf}); PPO_BENCH_SLURM_TESTS=1 runs them on it"
    return None


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.fspath)).parents]
    if not mine:
        return
    reason = why_no_slurm()
    if reason:
        skip = pytest.mark.skip(reason=f"{reason}; start one with: scripts/local_slurm.sh start (root, Debian/Ubuntu)")
        for item in mine:
            item.add_marker(skip)
