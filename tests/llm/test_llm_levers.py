"""GRPO's levers to reach its answer sooner (docs/llm.md, "GRPO faster"): the learning-rate schedules by hand, the
parameter groups' own step sizes, sampling with top-k / top-p against a brute-force filter, and LoRA through peft."""

import math

import pytest

from ppo_bench.llm.launch import build_trainer

TINY = ["model=tiny", "task.n_eval=4", "eval.every=0", "eval.before=false", "eval.batch_size=4", "eval.max_new_tokens=4",
        "algo.max_completion_length=4", "save_model=false", "torch_threads=1", "checkpoint_every=100"]


@pytest.mark.parametrize("schedule, warmup, want", [
    ("constant", 0, lambda s: 1.0),
    ("linear", 0, lambda s: 1 - s / 10),
    ("cosine", 0, lambda s: 0.5 * (1 + math.cos(math.pi * s / 10))),
    ("cosine", 4, lambda s: min(1.0, (s + 1) / 4) * 0.5 * (1 + math.cos(math.pi * s / 10))),
])
def test_learning_rate_schedules_by_hand(llm_cfg, schedule, warmup, want):
    run = build_trainer(llm_cfg(*TINY, "algo.steps=10", f"algo.lr_schedule={schedule}", f"algo.warmup_steps={warmup}"))
    for step in range(11):
        assert run.lr_factor(step) == pytest.approx(want(step), abs=1e-12), step
    assert run.lr_factor(10) == pytest.approx(0.0 if schedule != "constant" else 1.0, abs=1e-12)
