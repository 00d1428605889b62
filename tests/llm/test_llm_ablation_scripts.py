"""The stabiliser ablation (scripts/llm_stabilisers.py) and the GRPO 30-minute attempts (scripts/llm_grpo_fast.py):
every variant's config composes and validates as the comparison would run it, the switches they name are the ones
the docs describe, and the ablation's readings come from Welch's intervals against the baseline."""

from pathlib import Path

import pytest

from scripts.llm_comparison import Comparison, aggregate, check_configs, compose_cfg, method_stages  # noqa: F401
from scripts.llm_grpo_fast import ATTEMPTS
from scripts.llm_stabilisers import GROUPS, ablation_readings


@pytest.mark.parametrize("catalogue", [*GROUPS.values(), ATTEMPTS], ids=[*GROUPS, "grpo_fast"])
def test_every_variant_composes_and_validates(tmp_path, catalogue):
    c = Comparison(methods=list(catalogue), budget_s=600.0, rm_share=None, model="smollm2", seeds=[0], runs=tmp_path,
                   out=tmp_path, catalogue=catalogue, own_schedule=catalogue is ATTEMPTS)
    check_configs(c)  # raises ConfigError, naming the override, for any that does not


def test_the_variants_turn_on_the_switches_they_name(tmp_path):
    def algo(catalogue, key):
        m = catalogue[key]
        c = Comparison(methods=[key], budget_s=600.0, rm_share=None, model="smollm2", seeds=[0], runs=tmp_path, out=tmp_path,
                       catalogue=catalogue)
        rm = ["algo.reward_model=/x"] if m.reward_model else []
        return compose_cfg([*m.overrides, *rm, *c.run_overrides(key, "ppo", 600.0, 0)]).algo

    ppo = GROUPS["ppo"]
    base = algo(ppo, "ppo")
    assert (base.value_warmup_steps, base.reward_norm, base.adaptive_kl, base.lr, base.prompts_per_step) == (0, "none", False, 3e-5, 8)
    assert (algo(ppo, "ppo_warmup").value_warmup_steps, algo(ppo, "ppo_warmup").vf_lr) == (5, 1e-4)
    assert algo(ppo, "ppo_reward_norm").reward_norm == "running"
    adaptive = algo(ppo, "ppo_adaptive_kl")
    assert adaptive.adaptive_kl and adaptive.prompts_per_step / adaptive.kl_horizon == pytest.approx(0.1)  # K_β of the paper
    assert algo(ppo, "ppo_small_step").lr == 1e-5
    every = algo(GROUPS["rlhf"], "rlhf_all")
    assert (every.value_init, every.value_warmup_steps, every.reward_norm, every.adaptive_kl, every.lr) == \
        ("reward_model", 5, "running", True, 1e-5)
    assert algo(GROUPS["kto"], "kto_desirable").desirable_weight == 1.33 and algo(GROUPS["kto"], "kto_beta").beta == 0.5


def test_the_ablation_reads_each_switch_against_the_baseline():
    def row(method, seed, acc, kl):
        return {"method": method, "seed": seed, "steps": 20, "updates": 20, "run_wall_s": 400.0, "wall_s": 400.0,
                "peak_rss_mb": 1.0, "models_held": 2, "models": "m",
                "evaluation": {"accuracy": {"policy": acc}, "preferences": None, "reward_model": None, "win_rate": None,
                               "perplexity": {"policy": None}, "kl_to_reference": {"exact": kl}, "completion_length": {"policy": 10.0}}}
    rows = [row("ppo", s, a, 8.0) for s, a in enumerate((0.03, 0.10, 0.05))]
    rows += [row("ppo_warmup", s, a, 2.0) for s, a in enumerate((0.40, 0.45, 0.38))]
    rows += [row("ppo_small_step", s, a, 3.0) for s, a in enumerate((0.02, 0.12, 0.08))]
    c = Comparison(methods=["ppo", "ppo_warmup", "ppo_small_step"], budget_s=600.0, rm_share=None, model="smollm2",
                   seeds=[0, 1, 2], runs=Path("."), out=Path("."), catalogue=GROUPS["ppo"])
    text = ablation_readings(c, aggregate(c, rows), {"accuracy": 0.11, "length": 50.0})
    assert "**+ value warm-up**: accuracy 0.410 [" in text and "higher than the baseline's (+0.350 [" in text
    assert "**+ smaller step**: accuracy 0.073 [" in text and "within the noise of the baseline's (+0.013 [" in text
    assert "KL to the start -6.00 [-6.00, -6.00] nats" in text
    assert "**What the measurements support as a default:** + value warm-up: higher than the baseline beyond the noise." in text
    # 0.06 against 0.11 on three seeds: t(2) = 4.30 widens the interval to [-0.140, +0.040], which holds 0
    assert "within the noise of it: PPO (baseline) (-0.050 [-0.140, +0.040])" in text
