"""Table 1's formulas against hand values, reading event files, and the report of missing runs."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from torch.utils.tensorboard import SummaryWriter

from ppo_bench.analysis import report
from ppo_bench.analysis.random_policy import load_random_scores, random_policy_episodes, summarize, write_random_scores
from ppo_bench.analysis.runs import Grid, experiment_grid, find_runs, read_episodes
from ppo_bench.analysis.scores import (best_run_score, best_setting_mean, normalized_score, paper_scores,
                                       run_score, setting_label)
from ppo_bench.analysis.table1 import CSV_COLUMNS, build_table1, render_markdown

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------- formulas
def test_run_score_is_the_mean_of_the_last_100_episodes():
    assert run_score(np.arange(1.0, 151.0)) == pytest.approx(100.5)  # mean of 51..150
    assert run_score([2.0, 4.0, 9.0]) == pytest.approx(5.0)  # fewer than 100: all of them
    assert run_score([1.0, 2.0, 3.0, 10.0], last=2) == pytest.approx(6.5)
    assert math.isnan(run_score([]))


def test_normalized_score_puts_random_at_0_and_best_at_1():
    random, best = -282.5, 1717.5
    assert normalized_score(random, random, best) == 0.0
    assert normalized_score(best, random, best) == 1.0
    assert normalized_score(717.5, random, best) == pytest.approx(0.5)
    assert normalized_score(-682.5, random, best) == pytest.approx(-0.2)  # worse than random: negative
    assert math.isnan(normalized_score(10.0, 20.0, 15.0))  # nothing beat the random policy: undefined
    assert math.isnan(normalized_score(10.0, 20.0, 20.0))


def test_the_two_readings_of_best_result():
    scores = {("clip", 0): 1.0, ("clip", 1): 5.0, ("none", 0): 4.0, ("none", 1): 4.0, ("kl", 0): float("nan")}
    assert best_run_score(scores) == 5.0  # the best single run
    assert best_setting_mean(scores) == 4.0  # the best setting's mean over seeds: none (4) beats clip (3)


def test_table1_experiment_is_the_papers_grid_and_every_setting_has_a_paper_value():
    grid = experiment_grid("table1")
    assert sorted(grid.envs) == ["HalfCheetah-v5", "Hopper-v5", "InvertedDoublePendulum-v5", "InvertedPendulum-v5",
                                 "Reacher-v5", "Swimmer-v5", "Walker2d-v5"]
    assert grid.seeds == [0, 1, 2] and len(grid.keys()) == 231
    assert grid.settings == list(paper_scores())  # the paper's 11 rows, in its order
    assert setting_label(grid.objectives["kl_adaptive_beta1_kl_target0.003"]) == "Adaptive KL, d_targ = 0.003"


def test_smoke_experiment_is_a_small_version_of_the_same_sweep():
    grid = experiment_grid("table1_smoke")
    assert len(grid.envs) == 2 and len(grid.settings) == 3 and 1 <= len(grid.seeds) <= 2
    assert set(grid.settings) <= set(experiment_grid("table1").settings)


# ----------------------------------------------------------------------------------------- random policy
def test_random_policy_is_reproducible_and_its_csv_round_trips(tmp_path):
    r1, l1 = random_policy_episodes("InvertedPendulum-v5", 5, seed=3)
    r2, l2 = random_policy_episodes("InvertedPendulum-v5", 5, seed=3)
    assert np.array_equal(r1, r2) and np.array_equal(l1, l2) and (l1 > 0).all()
    row = summarize("InvertedPendulum-v5", 3, r1, l1)
    assert row["score_mean"] == pytest.approx(r1.mean()) and row["episodes"] == 5
    write_random_scores([row], tmp_path / "random.csv")
    assert load_random_scores(tmp_path / "random.csv") == {"InvertedPendulum-v5": pytest.approx(r1.mean(), rel=1e-5)}


def test_committed_random_scores_cover_table1_with_at_least_100_episodes():
    with open(REPO / "results" / "random_scores.csv", newline="") as f:
        rows = {r["env"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(experiment_grid("table1").envs)
    assert all(int(r["episodes"]) >= 100 for r in rows.values())


# ----------------------------------------------------------------------------------------- event files
def write_run(root, env, setting, seed, returns, status="finished", step_per_episode=10, error=None,
              objective=None, first_step=0, global_step=None, wall_s=None):
    """A run folder as the engine writes it: event file, config.yaml, status.json."""
    d = Path(root) / env / setting / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    w = SummaryWriter(str(d))
    for i, ret in enumerate(returns):
        w.add_scalar("charts/episodic_return", ret, first_step + (i + 1) * step_per_episode)
    w.close()
    obj = objective or {"name": setting.split("_")[0]}
    (d / "config.yaml").write_text(f"objective: {json.dumps(obj)}\nppo:\n  total_timesteps: 1000\n")
    if status is not None:
        gs = global_step if global_step is not None else first_step + len(returns) * step_per_episode
        st = {"status": status, "run": f"{env}/{setting}/seed{seed}", "global_step": gs}
        if error:
            st["error"] = error
        if wall_s is not None:
            st["wall_s"] = wall_s
        (d / "status.json").write_text(json.dumps(st))
    return d


def test_a_resumed_run_reads_like_tensorboard_shows_it(tmp_path):
    d = write_run(tmp_path, "E-v0", "none", 0, [1.0, 2.0, 3.0, 4.0])  # steps 10..40, killed after step 40
    import time

    time.sleep(1.1)  # event file names carry the second they were opened
    # resumed from the checkpoint at step 20, as the engine's RunLogger does it: purge what came after
    w = SummaryWriter(str(d), purge_step=20 + 1)
    for step, ret in [(30, 3.5), (40, 4.5), (50, 5.5)]:
        w.add_scalar("charts/episodic_return", ret, step)
    w.close()
    assert len(list(d.glob("events.out.tfevents.*"))) == 2
    steps, returns = read_episodes(d)
    assert steps.tolist() == [10, 20, 30, 40, 50]
    assert returns.tolist() == pytest.approx([1.0, 2.0, 3.5, 4.5, 5.5])


def test_event_reader_keeps_every_episode_beyond_tensorboards_default_reservoir(tmp_path):
    d = write_run(tmp_path, "E-v0", "none", 0, np.arange(12_000, dtype=float), step_per_episode=1)
    steps, returns = read_episodes(d)
    assert len(returns) == 12_000 and returns[-1] == 11_999.0


# ----------------------------------------------------------------------------------------- the report
@pytest.fixture
def sweep(tmp_path):
    """2 envs × 2 settings × 2 seeds with known scores, one failed run, one unfinished, one never started."""
    root = tmp_path / "runs"
    clip = {"name": "clip", "eps": 0.2}
    # scores (mean of the last 100 episodes): the 150 returns are 0 then 100 × the score
    def rets(score):
        return [0.0] * 50 + [score] * 100

    write_run(root, "A-v0", "none", 0, rets(10.0), wall_s=900.0)
    write_run(root, "A-v0", "none", 1, rets(20.0), wall_s=1800.0)  # A's job trained for 1800 s
    write_run(root, "A-v0", "clip_eps0.2", 0, rets(30.0), objective=clip)
    write_run(root, "A-v0", "clip_eps0.2", 1, rets(50.0), objective=clip)  # best run of A
    write_run(root, "B-v0", "none", 0, rets(-5.0), wall_s=5400.0)  # B's: 5400 s
    write_run(root, "B-v0", "none", 1, rets(99.0), status="failed", error="non-finite loss")
    write_run(root, "B-v0", "clip_eps0.2", 0, rets(15.0), objective=clip)  # best run of B
    write_run(root, "B-v0", "clip_eps0.2", 2, rets(0.0), objective=clip, status="running", global_step=500)
    # B-v0/clip_eps0.2/seed1 was never started
    random_csv = tmp_path / "random.csv"
    write_random_scores([{"env": "A-v0", "episodes": 100, "seed": 0, "score_mean": 10.0, "score_std": 1.0,
                          "score_sem": 0.1, "length_mean": 5.0},
                         {"env": "B-v0", "episodes": 100, "seed": 0, "score_mean": -5.0, "score_std": 1.0,
                          "score_sem": 0.1, "length_mean": 5.0}], random_csv)
    return root, random_csv


def test_table_scores_and_normalisation_by_hand(sweep):
    root, random_csv = sweep
    grid = Grid(["A-v0", "B-v0"], ["none", "clip_eps0.2"], [0, 1])
    t = build_table1(find_runs([root]), load_random_scores(random_csv), grid, reps=50)
    assert list(t.table.columns) == CSV_COLUMNS
    assert t.settings == ["none", "clip_eps0.2"]  # the paper's row order
    cell = t.table.set_index(["env", "setting"])
    # A: random 10, best 50 → none: (0 + 0.25)/2, clip: (0.5 + 1)/2
    assert cell.loc[("A-v0", "none"), "score_mean"] == pytest.approx(15.0)
    assert cell.loc[("A-v0", "none"), "score_std"] == pytest.approx(np.std([10, 20], ddof=1))
    assert cell.loc[("A-v0", "none"), "normalized_mean"] == pytest.approx(0.125)
    assert cell.loc[("A-v0", "clip_eps0.2"), "normalized_mean"] == pytest.approx(0.75)
    # B: random −5, best 15 (the failed run's 99 does not count) → none seed0 = 0, clip seed0 = 1
    assert cell.loc[("B-v0", "none"), "seeds"] == 1 and cell.loc[("B-v0", "none"), "normalized_mean"] == 0.0
    assert cell.loc[("B-v0", "clip_eps0.2"), "normalized_mean"] == pytest.approx(1.0)
    assert cell.loc[("A-v0", "none"), "timesteps"] == 1500
    col = t.column.set_index("setting")
    assert col.loc["none", "normalized_mean"] == pytest.approx((0 + 0.25 + 0) / 3)
    assert col.loc["clip_eps0.2", "normalized_mean"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert col.loc["none", "runs"] == 3 and col.loc["none", "runs_expected"] == 4
    assert col.loc["clip_eps0.2", "paper"] == 0.82
    assert math.isnan(col.loc["none", "mean_lo"])  # an incomplete (seed × env) matrix gets no bootstrap CI
    # the other reading of "best result": the best setting mean, A: clip (40), B: clip (15)
    t2 = build_table1(find_runs([root]), load_random_scores(random_csv), grid, best="setting", reps=50)
    assert t2.table.set_index(["env", "setting"]).loc[("A-v0", "clip_eps0.2"), "normalized_mean"] == \
        pytest.approx(((30 - 10) / 30 + (50 - 10) / 30) / 2)


def test_missing_failed_and_unfinished_runs_are_named(sweep):
    root, random_csv = sweep
    grid = Grid(["A-v0", "B-v0"], ["none", "clip_eps0.2"], [0, 1, 2])
    t = build_table1(find_runs([root]), load_random_scores(random_csv), grid, reps=50)
    why = {f"{e}/{s}/seed{k}": w for e, s, k, w in t.incomplete}
    assert why["B-v0/none/seed1"].startswith("failed at step 1500: non-finite loss")
    assert why["B-v0/clip_eps0.2/seed1"] == "missing: no run folder"
    assert why["B-v0/clip_eps0.2/seed2"].startswith("unfinished: checkpoint at step 500 of 1000")
    assert why["A-v0/none/seed2"] == "missing: no run folder"
    assert len(t.incomplete) == 12 - 6
    md = render_markdown(t, "ppo-bench-report runs", [str(root)], 50)
    for name, text in why.items():
        assert f"`{name}`: {text}" in md
    assert "6 of 12 runs are not in the tables" in md


def test_training_time_is_the_longest_run_of_each_job(sweep):
    root, random_csv = sweep
    grid = Grid(["A-v0", "B-v0"], ["none", "clip_eps0.2"], [0, 1])
    t = build_table1(find_runs([root]), load_random_scores(random_csv), grid, reps=50)
    assert t.training_s == {"A-v0": 1800.0, "B-v0": 5400.0}
    md = render_markdown(t, "ppo-bench-report runs", [str(root)], 50)
    assert "| A-v0 | 0.50 |" in md and "| B-v0 | 1.50 |" in md and "In all 2.00 core-hours" in md


def test_report_command_writes_all_four_outputs(sweep, tmp_path, capsys):
    root, random_csv = sweep
    out = tmp_path / "out"
    assert report.main([str(root), "--random-scores", str(random_csv), "--out-dir", str(out), "--reps", "50",
                        "--curves", str(tmp_path / "curves.png")]) == 0
    printed = capsys.readouterr().out
    assert "6 finished runs of 12 expected; 6 missing, unfinished or failed" in printed  # found: seeds 0, 1, 2
    with open(out / "table1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and list(rows[0]) == CSV_COLUMNS
    md = (out / "table1.md").read_text()
    assert "B-v0/clip_eps0.2/seed1`: missing" in md and "| Clipping, ε = 0.2 |" in md
    for png in (tmp_path / "curves.png", out / "table1_scores.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


@pytest.mark.parametrize("args, message", [
    (["/no/such/folder"], "error: run root /no/such/folder is not a folder"),
    (["{root}", "--experiment", "nope"], "error: experiment='nope' has no conf/experiment/nope.yaml; allowed: "),
    (["{root}", "--random-scores", "/no/such.csv"], "error: cannot read /no/such.csv: No such file or directory"),
])
def test_report_bad_input_is_one_line(sweep, tmp_path, capsys, args, message):
    root, _ = sweep
    assert report.main([a.format(root=root) for a in args] + ["--out-dir", str(tmp_path / "out")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "out").exists()


def test_variant_column_is_an_earlier_sweep_on_this_tables_scale(sweep, tmp_path, capsys):
    root, random_csv = sweep
    variant_csv = tmp_path / "earlier" / "table1.csv"
    variant_csv.parent.mkdir()
    # an earlier sweep of the same grid: A none 30 → (30−10)/40 = 0.5, A clip 50 → 1.0; B none −5 → 0, B clip 25 → 1.5
    variant_csv.write_text("env,objective,setting,seeds,timesteps,score_mean,score_std,normalized_mean\n"
                           "A-v0,none,none,2,1500,30,1,0.4\nA-v0,clip,clip_eps0.2,2,1500,50,1,0.8\n"
                           "B-v0,none,none,2,1500,-5,1,0.0\nB-v0,clip,clip_eps0.2,2,1500,25,1,1.0\n")
    out = tmp_path / "out"
    assert report.main([str(root), "--random-scores", str(random_csv), "--out-dir", str(out), "--reps", "50",
                        "--variant", f"older={variant_csv}"]) == 0
    printed = capsys.readouterr().out
    grid = Grid(["A-v0", "B-v0"], ["none", "clip_eps0.2"], [0, 1])
    t = build_table1(find_runs([root]), load_random_scores(random_csv), grid, reps=50)
    from ppo_bench.analysis.table1 import read_variant
    v = read_variant(variant_csv, t)  # A: random 10, best 50; B: random −5, best 15
    assert v.normalized.at["A-v0", "none"] == pytest.approx(0.5)
    assert v.normalized.at["B-v0", "clip_eps0.2"] == pytest.approx(1.5)
    assert v.column["none"] == pytest.approx(0.25) and v.column["clip_eps0.2"] == pytest.approx(1.25)
    assert v.own_column["none"] == pytest.approx(0.2) and v.own_column["clip_eps0.2"] == pytest.approx(0.9)
    md = (out / "table1.md").read_text()
    assert "| older | − paper |" in md and "### This sweep − older, per environment" in md
    assert "| 1.25 | +0.43 |" in md  # the variant's clip ε = 0.2 cell and its distance to the paper's 0.82
    assert "older" in printed.splitlines()[1]


@pytest.mark.parametrize("variant, message", [
    ("no-equals-sign", "--variant 'no-equals-sign': expected LABEL=PATH_TO_TABLE1_CSV"),
    ("x=/no/such.csv", "error: variant table /no/such.csv is not a file"),
])
def test_bad_variant_is_one_line(sweep, tmp_path, capsys, variant, message):
    root, random_csv = sweep
    rc = report.main([str(root), "--random-scores", str(random_csv), "--out-dir", str(tmp_path / "out"),
                      "--reps", "50", "--variant", variant])
    assert rc == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_figure3_ranking_reads_the_table_task_by_task():
    from ppo_bench.analysis.figure3 import ALGORITHMS, render_markdown

    scores = {"ppo": 1500.0, "trpo": 1700.0, "vpg": 300.0, "a2c": 900.0, "a2c_trust_region": 800.0, "cem": 100.0}
    rows = [{"env": "HalfCheetah-v5", "algo.name": a, "seeds": 3, "score_mean": v, "score_std": 1.0} for a, v in scores.items()]
    rows += [{"env": "Hopper-v5", "algo.name": a, "seeds": 3 if a != "cem" else 2, "score_mean": 10.0 * i,
              "score_std": 0.0} for i, a in enumerate(reversed(ALGORITHMS))]  # PPO highest; CEM unfinished
    rows += [{"env": "Swimmer-v5", "algo.name": "trpo", "seeds": 3, "score_mean": 50.0, "score_std": 0.0}]
    md = render_markdown(pd.DataFrame(rows), "ppo-bench-report runs/figure3 --experiment figure3", 3)
    assert ("- **HalfCheetah-v5**: TRPO 1700.0 > PPO (clip) 1500.0 > A2C 900.0 > A2C + Trust Region 800.0 > "
            "Vanilla PG, adaptive 300.0 > CEM 100.0; PPO 2 of 6. Among the paper's four: here PPO is not first; in the "
            "paper by eye PPO (clip) 1800.0 > A2C 1000.0 > A2C + Trust Region 930.0 > TRPO 0.0.") in md
    assert "- **Hopper-v5**: PPO (clip) 50.0 > TRPO 40.0 > Vanilla PG, adaptive 30.0 > A2C 20.0 > A2C + Trust Region 10.0; PPO 1 of 5." in md
    assert "- **Swimmer-v5**: not compared (1 of 6 algorithms have all 3 seeds finished, PPO not)." in md
    assert "PPO is first here on 1 of 2 tasks compared (of all 6 algorithms) and first among the paper's four on 1 of 2; " \
           "in the paper, read by eye, it is first or tied for first on 2 of those 2." in md


def test_figure3_report_from_run_folders_end_to_end(tmp_path):
    """ppo-bench-report --experiment figure3 on run folders as the engine writes them: the table's means from the
    runs' last 100 episodes, the figure's panels in rows of up to four (the paper's layout)."""
    from matplotlib.image import imread

    from ppo_bench.analysis.figure3 import ALGORITHMS

    root = tmp_path / "runs"
    for env in ("Hopper-v5", "Swimmer-v5"):
        for i, algo in enumerate(ALGORITHMS):
            setting = "clip_eps0.2" if algo == "ppo" else algo
            for seed in range(3):
                d = write_run(root, env, setting, seed, [0.0] * 20 + [100.0 * (i + 1) + seed] * 100)
                (d / "config.yaml").write_text(
                    f"env:\n  id: {env}\nseed: {seed}\nalgo:\n  name: {algo}\n"
                    + ("objective: {name: clip, eps: 0.2}\n" if algo == "ppo" else "objective: null\n")
                    + "ppo:\n  total_timesteps: 1000\n")
    out = tmp_path / "out"
    assert report.main([str(root), "--experiment", "figure3", "--out-dir", str(out), "--reps", "50"]) == 0
    md = (out / "figure3.md").read_text()
    # TRPO (i = 1) scores 200 + seed: mean 201, sample std 1 over seeds 0-2
    assert "| Hopper-v5 | 101.0 ± 1.0 (n=3) | 201.0 ± 1.0 (n=3) |" in md
    assert "- **Swimmer-v5**: CEM 601.0 > A2C + Trust Region 501.0" in md
    height, width, _ = imread(out / "figure3.png").shape
    assert width > 1.8 * height  # two panels side by side, not stacked
