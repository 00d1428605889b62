"""The comparison command end to end on the tiny model: every method trained and evaluated, the files and their rows;
a relaunch redoes nothing; bad options in one line."""

import json
from pathlib import Path

import pytest

from scripts.llm_comparison import METHODS, main

PREFERENCE = [k for k, m in METHODS.items() if m.pairs and m.reward_model is None]


def test_the_comparison_end_to_end_on_the_tiny_model(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["--model", "tiny", "--in-process", "--budget-min", "0.02", "--seeds", "0", "1", "--run-root", str(runs),
            "--out", str(out), "--pair-prompts", "6", "--pair-samples", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    md = (out / "comparison_tiny.md").read_text()
    assert "Command: `python scripts/llm_comparison.py --model tiny --in-process --budget-min 0.02" in md
    for m in METHODS.values():
        assert f"| {m.label} | 2 | " in md, m.label
    assert "| starting model (the reference) |" in md and "## Readings" in md and "Student's t" in md
    res = json.loads((out / "comparison_tiny.json").read_text())
    assert res["seeds"] == [0, 1] and set(res["pairs"]) == {"0", "1"}
    rows = {(r["method"], r["seed"]): r for r in res["rows"]}
    assert sorted(rows) == sorted((k, s) for k in METHODS for s in (0, 1))
    for key, r in rows.items():
        assert not r.get("error"), (key, r.get("error"))
        e = r["evaluation"]
        assert e["accuracy"]["policy"] is not None and e["perplexity"]["policy"] > 0 and e["kl_to_reference"]["sequences"] == 8
        assert e["reward_model"]["policy_score"] is not None  # every method scored by its seed's RLHF reward model
        assert e["reward_model"]["path"].endswith(f"rlhf_reward_model/seed{key[1]}/model")
        assert r["wall_s"] >= r["charged_before_s"] >= 0 and r["peak_rss_mb"] > 0
    # each method's columns: the mean and the t-interval of its two seeds' values
    for key, m in res["methods"].items():
        acc = m["columns"]["accuracy"]
        values = [rows[(key, s)]["evaluation"]["accuracy"]["policy"] for s in (0, 1)]
        assert acc["values"] == values and acc["mean"] == pytest.approx(sum(values) / 2)
        half = 12.706204736174707 * abs(values[0] - values[1]) / 2  # t_{0.975, 1} · s/√2, s = |a − b|/√2
        assert acc["hi"] - acc["mean"] == pytest.approx(half, abs=1e-12)
    # LMs in memory while training: PPO policy (+ value head) and reference; RLHF also its reward model; GRPO (β = 0)
    # and the preference methods only the policy
    assert {k: m["models_held"] for k, m in res["methods"].items()} == {"ppo": 2, "rlhf": 3, "grpo": 1, **{k: 1 for k in PREFERENCE}}
    # each seed's pairs, sampled apart, are charged to every method of that seed that trains on them
    for s in (0, 1):
        pairs_s = res["pairs"][str(s)]["seconds"]
        assert all(rows[(k, s)]["charged_before_s"] == round(pairs_s, 1) for k in PREFERENCE)
        assert rows[("rlhf", s)]["charged_before_s"] >= pairs_s and rows[("ppo", s)]["charged_before_s"] == 0
    assert (out / "comparison_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a relaunch: every run skipped (nothing trained), every evaluation reused
    written = {p: p.stat().st_mtime_ns for p in [*runs.rglob("checkpoint.pt"), *runs.rglob("evaluations/*.json")]}
    assert len(written) == 2 * (len(METHODS) * 2 + 1)  # a checkpoint and an evaluation per method and seed, RLHF's reward model
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_a_killed_comparison_relaunched_continues_and_ends_as_an_uninterrupted_one(tmp_path, capsys, monkeypatch):
    # step-bounded runs (algo.steps=2 under a budget they never reach), so that the two comparisons are comparable
    # bit for bit; the kill comes right after the 4th checkpoint: in the middle of the second run
    from ppo_bench.llm.harness.run import LMRun

    def argv(root):
        return ["--model", "tiny", "--in-process", "--budget-min", "10", "--seeds", "0", "1", "--methods", "ppo", "dpo",
                "--run-root", str(root / "runs"), "--out", str(root / "out"), "--pair-prompts", "4", "--pair-samples", "2",
                "algo.steps=2", "checkpoint_every=1"]

    assert main(argv(tmp_path / "straight")) == 0, capsys.readouterr().err
    saves, real = [], LMRun.save_checkpoint

    def killed_at_the_fourth(self):
        real(self)
        saves.append(self.run_dir)
        if len(saves) == 4:
            raise KeyboardInterrupt  # as if the process were killed here

    monkeypatch.setattr(LMRun, "save_checkpoint", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        main(argv(tmp_path / "killed"))
    monkeypatch.setattr(LMRun, "save_checkpoint", real)
    runs = tmp_path / "killed" / "runs" / "comparison"
    first = saves[0]
    assert (first / "summary.json").is_file() and not (saves[3] / "summary.json").exists()  # one finished, one cut short
    kept = {p: p.stat().st_mtime_ns for p in [first / "checkpoint.pt", runs / "pairs_seed0.jsonl"]}
    assert main(argv(tmp_path / "killed")) == 0, capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the finished run and the pairs were not redone
    a = json.loads((tmp_path / "straight" / "out" / "comparison_tiny.json").read_text())
    b = json.loads((tmp_path / "killed" / "out" / "comparison_tiny.json").read_text())
    assert [(r["method"], r["seed"], r["steps"], r["evaluation"]["accuracy"], r["evaluation"]["kl_to_reference"]["exact"])
            for r in a["rows"]] == \
           [(r["method"], r["seed"], r["steps"], r["evaluation"]["accuracy"], r["evaluation"]["kl_to_reference"]["exact"])
            for r in b["rows"]]


def test_the_budget_is_sized_from_a_calibration_run_and_kept(tmp_path, capsys):
    argv = ["--model", "tiny", "--in-process", "--seeds", "0", "1", "2", "--methods", "grpo", "rlhf", "--run-root",
            str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--pair-prompts", "4", "--pair-samples", "2",
            "--calibration-steps", "2", "--plan"]
    assert main(argv) == 0, capsys.readouterr().err
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("budget ") and "6 runs on 2 jobs" in line, line
    sizing = json.loads((tmp_path / "runs" / "comparison" / "sizing.json").read_text())
    assert set(sizing["calibration"]) == {"grpo", "rlhf"} and sizing["calibration"]["rlhf"]["rm_step_s"] > 0
    assert sizing["budget_s"] == pytest.approx(1.15 * max(n["need_s"] for n in sizing["needs"].values()))
    calibrated = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "comparison" / "calibration").rglob("summary.json")}
    assert len(calibrated) == 3  # GRPO, RLHF's reward model and its PPO
    assert main(argv) == 0  # the plan is kept: nothing is calibrated again
    assert {p: p.stat().st_mtime_ns for p in calibrated} == calibrated
    err = main([*argv[:-1], "--max-hours", "1e-9"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == 2 and len(lines) == 1 and "more than --max-hours 1e-09" in lines[0], lines


def test_size_budget_by_hand():
    from scripts.llm_sizing import size_budget

    cal = {"ppo": {"step_s": 24.0, "update_rate": 1.0, "setup_s": 0.0, "warmup_steps": 5, "pairs_s": 0.0},
           "grpo": {"step_s": 30.0, "update_rate": 0.8, "setup_s": 0.0, "warmup_steps": 0, "pairs_s": 0.0},
           "dpo": {"step_s": 25.0, "update_rate": 1.0, "setup_s": 30.0, "warmup_steps": 0, "pairs_s": 130.0},
           "rlhf": {"step_s": 27.0, "update_rate": 1.0, "setup_s": 0.0, "warmup_steps": 0, "pairs_s": 130.0, "rm_step_s": 23.0}}
    s = size_budget(cal, min_updates=20, margin=1.15, rm_min_steps=5, seeds=3, jobs=2, periodic_evals=3, periodic_n=50,
                    n_eval=200, greedy_s_per_problem=0.2, eval_s_per_problem=0.5, eval_fixed_s=12.0,
                    reference_s_per_problem=0.3, calibration_s=600.0, pairs_s=130.0)
    # needs: PPO (20 + 5) × 24 = 600; GRPO 25 steps × 30 = 750; DPO 130 + 30 + 500 = 660; RLHF 130 + 5 × 23 + 540 = 785
    assert {k: v["need_s"] for k, v in s["needs"].items()} == {"ppo": 600.0, "grpo": 750.0, "dpo": 660.0, "rlhf": 785.0}
    assert s["bottleneck"] == "rlhf" and s["budget_s"] == pytest.approx(1.15 * 785)
    assert s["rm_share"] == pytest.approx(245 / 785)
    evals = 3 * 50 * 0.2 + 12 + 200 * 0.5  # 142 s per run: periodic greedy, then ppo-bench-llm-eval's loading and figures
    assert s["evaluation_s_per_run"] == pytest.approx(evals)
    reference = 200 * 0.3  # once per seed
    assert s["total_s"] == pytest.approx(600 + 2 * 130 + 3 * (4 * (1.15 * 785 + evals) + reference) / 2)


def test_intervals_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    from scripts.llm_intervals import difference, interval, verdict

    a, b = [0.51, 0.47, 0.60], [0.20, 0.31, 0.05, 0.12]
    i = interval(a)
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=sum(a) / 3, scale=stats.sem(a))
    assert (i.lo, i.hi) == (pytest.approx(lo), pytest.approx(hi))
    d = difference(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (d.lo, d.hi) == (pytest.approx(ci.low), pytest.approx(ci.high)) and verdict(d) == "higher"
    assert verdict(difference(b, a)) == "lower"
    assert verdict(difference([0.1, 0.3, 0.2], [0.25, 0.15, 0.2])) == "within the noise"
    one = difference(a, 0.55)  # against a constant: the one-sample interval, shifted
    assert (one.lo, one.hi) == (pytest.approx(lo - 0.55), pytest.approx(hi - 0.55)) and verdict(one) == "within the noise"
    assert interval([0.3]).lo is None and verdict(difference([0.3], [0.1, 0.2])) == "unknown"
    assert interval([None, float("nan")]).mean is None


@pytest.mark.parametrize("argv, message", [
    (["--methods", "grpo", "nope"], "--methods: unknown nope"),
    (["--budget-min", "0"], "--budget-min=0.0 must be > 0"),
    (["--rm-share", "1.5"], "--rm-share=1.5 must lie in (0, 1)"),
    (["--model", "huge"], "invalid choice: 'huge'"),
    (["--model", "tiny", "--methods", "grpo", "algo.lr=-1"], "algo.lr=-1.0 must be > 0"),
    (["--model", "tiny", "--methods", "dpo", "algo.no_such_key=1"], "no_such_key"),
])
def test_bad_options_are_one_line(tmp_path, capsys, argv, message):
    code = main([*argv, "--run-root", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--in-process"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_rank_correlation_by_hand_and_against_scipy():
    from scripts.llm_comparison import rank_correlation

    assert rank_correlation([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / 3 ** 0.5)  # ties share rank 0.5
    assert rank_correlation([1, 2], [1, 2]) is None and rank_correlation([1, 1, 1], [1, 2, 3]) is None
    stats = pytest.importorskip("scipy.stats")
    import random

    rng = random.Random(0)
    for _ in range(20):
        x = [rng.choice([0.1, 0.2, 0.3, 0.4]) for _ in range(9)]
        y = [rng.random() for _ in range(9)]
        if len(set(x)) > 1:
            assert rank_correlation(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_the_evaluation_reading_reads_the_table():
    from scripts.llm_comparison import evaluation_reading

    def row(label, acc, pref, rm, ppl, kl):
        return {"label": label, "evaluation": {"accuracy": {"policy": acc}, "preferences": {"accuracy": pref},
                                               "reward_model": {"policy_score": rm}, "win_rate": {"win_rate": acc},
                                               "perplexity": {"policy": ppl}, "kl_to_reference": {"exact": kl}}}
    by = {"a": row("A", 0.1, 0.9, 0.0, 3.0, 0.5), "b": row("B", 0.5, 0.5, 1.0, 1.5, 2.0), "c": row("C", 0.3, 0.7, 0.5, 2.5, 9.0)}
    text = evaluation_reading(by, {"perplexity": 2.0})
    assert "preference accuracy on the held-out pairs orders the 3 methods as their held-out accuracy does with " \
           "Spearman's ρ = -1.00 (highest: A, 0.900 with accuracy 0.100; the most accurate, B at 0.500, has 0.500)" in text
    assert "the reward model's score orders the 3 methods as their held-out accuracy does with Spearman's ρ = +1.00." in text
    assert "went from 1.50 (B) to 3.00 (A): 2 of 3 methods made the correct answers less likely" in text
    assert "ranged from 0.50 (A) to 9.00 nats per completion (C)" in text


def test_the_readings_come_from_the_intervals():
    from scripts.llm_comparison import Comparison, aggregate, comparison_readings

    def row(method, seed, acc, step_s, peak, held, chosen=None, rejected=None):
        pref = {"accuracy": 1.0, "chosen_change": chosen, "rejected_change": rejected, "margin": None} if chosen is not None else None
        return {"method": method, "seed": seed, "label": method.upper(), "steps": 10, "updates": 10, "run_wall_s": 10 * step_s,
                "wall_s": 10 * step_s, "peak_rss_mb": peak, "models_held": held, "models": "m",
                "evaluation": {"accuracy": {"policy": acc}, "preferences": pref, "reward_model": None, "win_rate": None,
                               "perplexity": {"policy": None}, "kl_to_reference": {"exact": 1.0},
                               "completion_length": {"policy": 12.0}}}
    rows = [row("grpo", s, a, st, 5000.0 + s, 1) for s, a, st in ((0, 0.50, 20.0), (1, 0.55, 21.0), (2, 0.45, 19.0))]
    rows += [row("ppo", s, a, st, 4000.0 + s, 2) for s, a, st in ((0, 0.48, 40.0), (1, 0.40, 42.0), (2, 0.52, 38.0))]
    rows += [row("dpo", s, 0.05, 20.0, 3000.0, 1, c, j) for s, c, j in ((0, 2.0, -5.0), (1, 2.5, -6.0), (2, 1.5, -5.5))]
    rows += [row("ipo", s, 0.12, 20.0, 3000.0, 1, c, j) for s, c, j in ((0, 0.1, -0.2), (1, -0.2, 0.1), (2, 0.05, 0.0))]
    c = Comparison(methods=["grpo", "ppo", "dpo", "ipo"], budget_s=60.0, rm_share=None, model="tiny", seeds=[0, 1, 2],
                   runs=Path("."), out=Path("."))
    text = comparison_readings(c, aggregate(c, rows), {"accuracy": 0.11, "length": 50.0, "perplexity": None})
    assert "GRPO's accuracy is within the noise of PPO (verifier)'s (+0.033 [" in text  # 0.50 against 0.4667: the CI holds 0
    assert "its step shorter (-20.0 [" in text and "its peak memory higher (+1000 [" in text and "holding 1 LM(s) fewer" in text
    assert "DPO (sigmoid): y⁺ rose (+2.00 [" in text and "y⁻ fell (-5.50 [" in text
    assert "IPO: y⁺ did not move beyond the noise" in text and "in 1 of 2 (DPO (sigmoid))" in text
    assert "above it: GRPO (+0.390 [" in text and "below it: DPO (sigmoid) (-0.060" in text  # every DPO seed at 0.05: a zero-width CI
    assert "within the noise of it: IPO" not in text and "IPO (+0.010" in text
