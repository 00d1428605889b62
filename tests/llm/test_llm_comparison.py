"""The comparison command end to end on the tiny model: every method trained and evaluated, the files and their rows;
a relaunch redoes nothing; bad options in one line."""

import json

import pytest

from scripts.llm_comparison import METHODS, main

PREFERENCE = [k for k, m in METHODS.items() if m.pairs and m.reward_model is None]


def test_the_comparison_end_to_end_on_the_tiny_model(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["--model", "tiny", "--in-process", "--budget-min", "0.02", "--run-root", str(runs), "--out", str(out),
            "--pair-prompts", "6", "--pair-samples", "2"]
    assert main(argv) == 0, capsys.readouterr().err
    md = (out / "comparison_tiny.md").read_text()
    assert "Command: `python scripts/llm_comparison.py --model tiny --in-process --budget-min 0.02" in md
    for m in METHODS.values():
        assert f"| {m.label} |" in md, m.label
    assert "| starting model (the reference) |" in md and "## Readings" in md
    res = json.loads((out / "comparison_tiny.json").read_text())
    rows = {r["method"]: r for r in res["rows"]}
    assert list(rows) == list(METHODS)
    for key, r in rows.items():
        assert not r.get("error"), (key, r.get("error"))
        e = r["evaluation"]
        assert e["accuracy"]["policy"] is not None and e["perplexity"]["policy"] > 0 and e["kl_to_reference"]["sequences"] == 8
        assert e["reward_model"]["policy_score"] is not None  # every method scored by RLHF's reward model
        assert r["wall_s"] >= r["charged_before_s"] >= 0 and r["peak_rss_mb"] > 0
    # LMs in memory while training: PPO policy (+ value head) and reference; RLHF also its reward model; GRPO (β = 0)
    # and the preference methods only the policy
    assert {k: r["models_held"] for k, r in rows.items()} == {"ppo": 2, "rlhf": 3, "grpo": 1, **{k: 1 for k in PREFERENCE}}
    # the pairs' sampling time is charged to every method that trains on them, RLHF's reward model too
    pairs_s = res["pairs"]["seconds"]
    assert all(rows[k]["charged_before_s"] == round(pairs_s, 1) for k in PREFERENCE)
    assert rows["rlhf"]["charged_before_s"] >= pairs_s and rows["ppo"]["charged_before_s"] == 0
    assert (out / "comparison_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a relaunch: every run skipped (nothing trained), every evaluation reused
    written = {p: p.stat().st_mtime_ns for p in [*runs.rglob("checkpoint.pt"), *runs.rglob("evaluations/*.json")]}
    assert len(written) == len(METHODS) * 2 + 1  # a checkpoint and an evaluation per method, RLHF's reward model
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in written} == written


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


def test_the_cost_and_log_prob_readings_by_hand():
    from scripts.llm_comparison import readings

    def row(method, steps, wall, peak, held, chosen=None, rejected=None):
        pref = {"accuracy": 1.0, "chosen_change": chosen, "rejected_change": rejected} if chosen is not None else None
        return {"method": method, "label": method.upper(), "steps": steps, "wall_s": wall, "peak_rss_mb": peak,
                "models_held": held, "models": "m", "evaluation": {"accuracy": {"policy": 0.5}, "preferences": pref,
                                                                   "reward_model": None, "perplexity": {"policy": None},
                                                                   "kl_to_reference": None}}
    text = readings([row("grpo", 10, 200.0, 5000.0, 1), row("ppo", 5, 200.0, 4000.0, 2),
                     row("dpo", 9, 100.0, 3000.0, 1, 2.0, -5.0), row("ipo", 9, 100.0, 3000.0, 1, 3.0, -1.0)])
    assert ("Per step GRPO took 20 s against PPO's 40 s (0.50×) and held 1 LM(s) fewer; its peak memory was 1000 MB "
            "higher: fewer models but not less memory") in text
    assert "In 1 of 2 the rejected answer fell by more than the chosen one rose" in text
