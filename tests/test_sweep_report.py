"""The report for any sweep: runs grouped by config keys, one row per group with CIs, beside the runs."""

import csv

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.analysis import report
from ppo_bench.analysis.sweep import sweep_report
from ppo_bench.rl.launch import train_from_config

# a large step size, so that ε changes what the runs learn within 4 iterations
TINY = ["env=cartpole", "algo.num_steps=64", "algo.minibatch_size=16", "algo.epochs=4", "total_timesteps=256",
        "algo.lr=0.01", "population.objectives=[{name:clip,eps:0.1},{name:clip,eps:0.3}]"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A two-axis sweep as Hydra multirun lays it out: one job folder per algo.anneal_lr value, each job a
    population of 2 ε × 2 seeds (other seeds in each job, so that no two groups score alike)."""
    from hydra import compose, initialize_config_dir

    from ppo_bench.rl.engine.config import CONF_DIR

    root = tmp_path_factory.mktemp("sweep")
    for job, anneal in enumerate(["true", "false"]):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"run_root={root}/{job}", "progress=never", *TINY,
                                               f"algo.anneal_lr={anneal}", f"population.seeds=[{2 * job},{2 * job + 1}]"])
        train_from_config(cfg)
    random_csv = root.parent / "random_scores.csv"
    random_csv.write_text("env,episodes,seed,score_mean,score_std,score_sem,length_mean\n"
                          "CartPole-v1,100,0,22.0,10.0,1.0,22.0\n")
    return root, random_csv


def hand_score(run_dir) -> float:
    returns = [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars("charts/episodic_return")]
    return float(np.mean(returns[-100:]))


def test_one_row_per_group_with_cis_and_the_share_below_random(sweep):
    root, random_csv = sweep
    assert report.main([str(root), "--by", "algo.anneal_lr,objective.eps", "--random-scores", str(random_csv),
                        "--reps", "50", "--tags", "stats/kl,losses/entropy", "--tail", "3"]) == 0
    out = root / "report"  # the default: beside the runs, never the repository's results/
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["algo.anneal_lr"], r["objective.eps"]) for r in rows] == [
        ("false", "0.1"), ("false", "0.3"), ("true", "0.1"), ("true", "0.3")]
    for r in rows:
        job = "0" if r["algo.anneal_lr"] == "true" else "1"
        scores = [hand_score(root / job / "CartPole-v1" / f"clip_eps{r['objective.eps']}" / f"seed{2 * int(job) + k}")
                  for k in (0, 1)]
        assert int(r["seeds"]) == 2
        assert float(r["score_mean"]) == pytest.approx(np.mean(scores), rel=1e-5)
        assert float(r["score_std"]) == pytest.approx(np.std(scores, ddof=1), rel=1e-4, abs=1e-6)
        lo, hi = float(r["mean_lo"]), float(r["mean_hi"])
        assert min(scores) - 1e-6 <= lo <= float(r["score_mean"]) <= hi <= max(scores) + 1e-6
        assert np.isfinite(float(r["iqm"])) and np.isfinite(float(r["iqm_lo"]))
        assert float(r["frac_below_random"]) == np.mean([s < 22.0 for s in scores])
    assert len({r["score_mean"] for r in rows}) == 4  # the groups differ, so a mix-up would show
    md = (out / "scores.md").read_text()
    assert "## CartPole-v1" in md and md.count("\n| true |") == 4 and "--by algo.anneal_lr,objective.eps" in md
    assert (out / "curves.png").stat().st_size > 10_000
    # each tag's end of training (the seeds' mean of their last --tail values) and range, against the event files
    with open(out / "diagnostics.csv", newline="") as f:
        diag = list(csv.DictReader(f))
    assert len(diag) == 8 and {d["tag"] for d in diag} == {"stats/kl", "losses/entropy"}
    for d in diag:
        job = "0" if d["algo.anneal_lr"] == "true" else "1"
        series = [[e.value for e in EventAccumulator(str(root / job / "CartPole-v1" / f"clip_eps{d['objective.eps']}"
                                                         / f"seed{2 * int(job) + k}")).Reload().Scalars(d["tag"])]
                  for k in (0, 1)]
        assert len(series[0]) == 4  # one value per iteration: --tail 3 drops the first
        assert float(d["end_mean"]) == pytest.approx(np.mean([np.mean(v[-3:]) for v in series]), rel=1e-5)
        assert float(d["min"]) == pytest.approx(min(map(min, series)), rel=1e-6)
        assert float(d["max"]) == pytest.approx(max(map(max, series)), rel=1e-6)


def test_python_call_and_bad_keys(sweep, tmp_path, capsys):
    root, random_csv = sweep
    rep = sweep_report(root, by=["algo.anneal_lr"], out_dir=tmp_path / "r", random_scores=random_csv, reps=20)
    assert list(rep.table["seeds"]) == [4, 4]  # ε and seeds pooled within a group
    assert any("objective.eps" in n for n in rep.notes)  # says what else varies
    assert report.main([str(root), "--by", "algo.no_such_key", "--out-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --by algo.no_such_key: no run's config has that key") and "\n" not in err
    assert "objective.eps" in err and "algo.anneal_lr" in err


def test_table1_report_defaults_to_the_run_folder_not_results(sweep):
    root, random_csv = sweep
    assert report.main([str(root / "0"), "--random-scores", str(random_csv), "--reps", "20"]) == 0
    assert (root / "0" / "report" / "table1.md").exists() and (root / "0" / "report" / "table1_scores.png").exists()
