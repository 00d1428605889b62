"""How long an LM comparison's budget must be, from step times measured on this machine (``scripts/llm_comparison.py``).

A short calibration run of every method (``--calibration-steps`` steps, the comparison's own settings, ``--jobs`` at a
time as the comparison will run them) gives each method's cost per step (its training loop's wall time less its setup,
over its steps: checkpoints included, the first steps, the slowest, counted), its share of steps that update, its
setup (the preference methods' reference pass) and, for RLHF, its reward model's step; one ``ppo-bench-llm-eval`` of a
calibration run gives the cost of an evaluation: its loading, and per held-out problem its run's side and the
reference's side (``seconds_by_part``). From these ``size_budget`` below works out the
one wall-clock budget in which every method takes at least ``--min-updates`` updates, with a margin, and what the whole
comparison will cost the machine; a comparison over ``--max-hours`` is refused in one line before it starts.
"""

from __future__ import annotations

import math


def method_need(cal: dict, min_updates: int, rm_min_steps: int) -> dict:
    """Seconds one method needs for ``min_updates`` updates: what is charged before its run (the preference pairs; RLHF's
    reward model for ``rm_min_steps`` steps), its own setup, its value-only warm-up steps, then ``min_updates`` divided
    by its share of steps that update (a GRPO step whose groups all scored alike does not update), at its step cost."""
    rate = max(cal["update_rate"], 1e-9)
    steps = math.ceil(min_updates / rate) + cal.get("warmup_steps", 0)
    before = cal.get("pairs_s", 0.0)
    rm = rm_min_steps * cal["rm_step_s"] + cal.get("rm_setup_s", 0.0) if cal.get("rm_step_s") is not None else 0.0
    need = before + rm + cal.get("setup_s", 0.0) + steps * cal["step_s"]
    return {"need_s": need, "steps": steps, "before_s": before + rm}


def size_budget(calibration: dict[str, dict], *, min_updates: int, margin: float, rm_min_steps: int, seeds: int, jobs: int,
                periodic_evals: int, periodic_n: int, n_eval: int, greedy_s_per_problem: float, eval_s_per_problem: float,
                eval_fixed_s: float, reference_s_per_problem: float, calibration_s: float, pairs_s: float) -> dict:
    """The budget (the largest need times ``margin``), RLHF's reward-model share of it, and the machine time of the whole
    comparison: the calibration, the pairs of the other seeds, then every run's budget, its periodic evaluations
    (``periodic_n`` problems greedy, ``greedy_s_per_problem`` each) and ``ppo-bench-llm-eval`` (``eval_fixed_s`` of
    loading, then ``eval_s_per_problem`` for each of ``n_eval`` problems; the runs skip the harness's own final
    evaluation, whose greedy answers ``ppo-bench-llm-eval`` measures again), and once per seed the reference's side of
    the evaluation (cached for the seed's other runs), ``jobs`` at a time."""
    needs = {k: method_need(c, min_updates, rm_min_steps) for k, c in calibration.items()}
    bottleneck = max(needs, key=lambda k: needs[k]["need_s"])
    budget = margin * needs[bottleneck]["need_s"]
    rm_share = None
    for k, c in calibration.items():
        if c.get("rm_step_s") is not None:  # the reward model's part of RLHF's need, kept in proportion
            rm_share = needs[k]["before_s"] / needs[k]["need_s"]
    evals = periodic_evals * periodic_n * greedy_s_per_problem + eval_fixed_s + n_eval * eval_s_per_problem
    per_seed = sum(budget + evals for _ in calibration) + n_eval * reference_s_per_problem
    total = calibration_s + (seeds - 1) * pairs_s + seeds * per_seed / jobs
    return {"budget_s": budget, "bottleneck": bottleneck, "needs": needs, "rm_share": rm_share, "runs": seeds * len(calibration),
            "evaluation_s_per_run": evals, "total_s": total, "min_updates": min_updates, "margin": margin}


def plan_line(s: dict, labels: dict[str, str], jobs: int) -> str:
    """One line: the budget, what set it, and the machine time."""
    return (f"budget {s['budget_s'] / 60:.1f} min per method (set by {labels[s['bottleneck']]}: "
            f"{s['needs'][s['bottleneck']]['steps']} steps for {s['min_updates']} updates, x{s['margin']:g} margin); "
            f"{s['runs']} runs on {jobs} jobs, about {s['total_s'] / 3600:.2f} h of the machine "
            f"(evaluations {s['evaluation_s_per_run'] / 60:.1f} min per run)")
