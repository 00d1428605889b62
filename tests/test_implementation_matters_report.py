"""The report of experiment=implementation_matters from run folders with known episodes: their final score (the
mean of the last 5 iterations' mean returns) by hand, AAI and ACLI by hand, one line per bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ppo_bench.analysis.implementation_matters import AGENTS, final_iterations_score, gaps, implementation_matters_report
from ppo_bench.analysis.report import main
from ppo_bench.common.tblog import RunLogger

T, ITERS = 100, 20  # steps per iteration, iterations


def fake_run(root, agent, env, seed, level, timing=None):
    """A finished run whose episodes end every 30 steps with return level + seed + (iteration ≥ 15) · 100."""
    setting = "trpo" if "trpo" in agent else "clip_eps0.2"
    d = root / agent / env / setting / f"seed{seed}"
    d.mkdir(parents=True)
    cfg = {"env": {"id": env, "num_envs": 1}, "algo": {"name": "trpo" if "trpo" in agent else "ppo", "num_steps": T,
                                                       "max_kl": 0.05, "lr": level * 1e-7},  # each agent its own settings
           "objective": {"name": "clip", "eps": 0.2},
           "seed": seed, "total_timesteps": T * ITERS}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    episodes = [(step, level + seed + 100 * ((step - 1) // T >= 15)) for step in range(30, T * ITERS + 1, 30)]
    score = float(np.mean([r for _, r in episodes][-100:]))  # what the engine's status.json says
    (d / "status.json").write_text(json.dumps({"status": "finished", "global_step": T * ITERS, "score_last100": score,
                                               **(timing or {})}))
    log = RunLogger(d)
    for step, ret in episodes:
        log.scalars({"charts/episodic_return": ret}, step)
    for it in range(1, ITERS + 1):
        log.scalars({"stats/ratio_max": 1.1 + it / 100, "stats/kl": 0.01}, it * T)
    log.close()


def test_final_score_by_hand():
    steps = np.array([50, 100, 101, 250, 400, 401, 500])
    returns = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    # iterations of 100 steps: 0: {1, 2}, 1: {3}, 2: {4}, 3: {5}, 4: {6, 7}; the last 3 are 2, 3, 4 → 4, 5, 6.5
    assert final_iterations_score(steps, returns, 100, 5, last=3) == pytest.approx((4 + 5 + 6.5) / 3)
    assert np.isnan(final_iterations_score(steps, returns, 100, 50, last=3))


def test_gaps_by_hand():
    assert gaps({"ppo": 10, "ppom": 4, "trpo": 3, "trpo_plus": 9}) == (1, 6)  # AAI max(1, 1); ACLI max(6, 6)
    assert gaps({"ppo": 3292, "ppom": 2735, "trpo": 2791, "trpo_plus": 3050}) == (242, 557)  # their Walker2d


def test_report_from_runs(tmp_path, capsys):
    levels = {"ppo": 1000, "ppom": 600, "noclip": 900, "trpo": 500, "trpo_plus": 950}
    # the jobs' times: PPO's 3 runs share a process of 3600 s wall, 1800 s CPU; TRPO's recorded CPU time from
    # iteration 7 on (resumed from an older checkpoint); the others' status.json has no CPU time
    timing = {"ppo": lambda k: {"wall_s": 3600.0 - k, "cpu_s": 1800.0 - k},
              "trpo": lambda k: {"wall_s": 7200.0, "cpu_s": 360.0, "cpu_s_since_iteration": 7}}
    for agent, level in levels.items():
        for seed in range(3):
            fake_run(tmp_path / "runs", agent, "Hopper-v5", seed, level,
                     timing[agent](seed) if agent in timing else {"wall_s": 1800.0})
    out = tmp_path / "report"
    assert main([str(tmp_path / "runs"), "--experiment", "implementation_matters", "--out-dir", str(out),
                 "--reps", "200"]) == 0
    csv = {(r.split(",")[0], r.split(",")[1]): r.split(",") for r in (out / "table2.csv").read_text().splitlines()[1:]}
    for agent, level in levels.items():
        row = csv[("Hopper-v5", agent)]
        # every seed's last 5 iterations all score level + seed + 100; the mean over seeds 0, 1, 2 adds 1
        assert int(row[2]) == 3 and float(row[3]) == pytest.approx(level + 101)
        assert float(row[4]) <= float(row[3]) <= float(row[5])
    md = (out / "table2.md").read_text()
    rows = {line.split(" =")[0][2:]: line for line in md.splitlines() if line.startswith(("| AAI", "| ACLI"))}
    # here: AAI = max(|1101 − 1051|, |701 − 601|) = 100, ACLI = max(|1101 − 701|, |1051 − 601|) = 450; their
    # Hopper's from the rounded means: 99 and 423
    assert rows["AAI"].endswith("| 100 | 99 |") and rows["ACLI"].endswith("| 450 | 423 |")
    assert "Hopper-v5, code-level optimisations in PPO: PPO higher" in md
    cost = md[md.index("## Cost"):]
    assert "| PPO on Hopper-v5 | 3 | 1.00 | 0.50 |" in cost  # the maximum over the job's runs
    assert "| TRPO on Hopper-v5 | 3 | 2.00 | 0.10 (from iteration 7) |" in cost
    assert "| PPO-M on Hopper-v5 | 3 | 0.50 | not recorded |" in cost
    # 1 + 0.5 × 3 (PPO-M, PPO-NoClip, TRPO+) + 2 wall hours; 0.5 + 0.1 CPU hours, a lower bound said so
    assert "**4.50 core-hours of training wall time** and **0.60 CPU hours** over 5 job(s)" in cost
    assert "so the CPU hours are a lower bound" in cost
    assert (out / "curves.png").stat().st_size > 0 and (out / "trust_region.png").stat().st_size > 0


def test_no_runs_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--experiment", "implementation_matters"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no runs of experiment=implementation_matters")
