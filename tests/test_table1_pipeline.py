"""End to end: experiment=table1_smoke through the multirun launcher → ppo-bench-report, then resume.

The same pipeline as the 231-run reproduction (joblib launcher, fixed folders, resume=true), at a size
that runs in well under a minute on 2 cores: 2 envs × 3 settings × 2 seeds × 1024 steps.
"""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ppo_bench.analysis import report
from ppo_bench.analysis.runs import experiment_grid
from ppo_bench.analysis.table1 import CSV_COLUMNS

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def launch(tmp_path):
    env = {**os.environ, "CI": "1", "HYDRA_FULL_ERROR": "1"}
    r = subprocess.run([sys.executable, "-m", "ppo_bench", "-m", "experiment=table1_smoke",
                        f"run_root={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/multirun"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def files(root: Path) -> dict[str, int]:
    """Every file under root with its modification time: what a launch wrote (not the run folders' locks,
    which every launch takes and stamps with its pid)."""
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and p.name != ".lock"}


def run_report(tmp_path, out: str):
    assert report.main([f"{tmp_path}/runs", "--experiment", "table1_smoke", "--out-dir", str(tmp_path / out),
                        "--reps", "100"]) == 0
    with open(tmp_path / out / "table1.csv", newline="") as f:
        return list(csv.DictReader(f)), (tmp_path / out / "table1.md").read_text()


def test_smoke_sweep_report_and_resume(tmp_path):
    grid = experiment_grid("table1_smoke")
    launch(tmp_path)
    runs = tmp_path / "runs"
    for env, setting, seed in grid.keys():
        d = runs / env / setting / f"seed{seed}"
        assert (d / "status.json").exists() and any(d.glob("events.out.tfevents.*")), d
    first = files(runs)

    # a second launch of the same sweep trains nothing: no file under the run root is written
    launch(tmp_path)
    assert files(runs) == first

    # a run lost (never started, or deleted): the report names it, the next launch trains only it
    lost = f"{grid.envs[1]}/{grid.settings[1]}/seed{grid.seeds[-1]}"
    shutil.rmtree(runs / lost)
    rows, md = run_report(tmp_path, "partial")
    assert f"`{lost}`: missing: no run folder" in md
    cell = [r for r in rows if f"{r['env']}/{r['setting']}" == lost.rsplit("/", 1)[0]]
    assert cell[0]["seeds"] == str(len(grid.seeds) - 1)
    launch(tmp_path)
    after = files(runs)
    changed = {p for p in after if first.get(p) != after[p]}
    assert changed and all(p.startswith(lost + "/") for p in changed), sorted(changed)[:5]

    rows, md = run_report(tmp_path, "results")
    assert len(rows) == len(grid.envs) * len(grid.settings)
    assert list(rows[0]) == CSV_COLUMNS
    assert [(r["env"], r["setting"]) for r in rows] == [(e, s) for e in sorted(grid.envs) for s in grid.settings]
    for r in rows:
        assert r["seeds"] == str(len(grid.seeds)) and r["timesteps"] == "1024"
        assert float(r["score_mean"]) == float(r["score_mean"])  # not NaN
        if r["normalized_mean"] != "nan":
            assert float(r["normalized_mean"]) <= 1.0 + 1e-9  # 1 is the best run
    assert any(r["normalized_mean"] != "nan" for r in rows)
    assert "None: every run of the grid finished." in md
    for png in ("learning_curves.png", "table1_scores.png"):
        data = (tmp_path / "results" / png).read_bytes()
        assert data[:8] == PNG and len(data) > 10_000
