"""A run's wall-clock budget (max_wall_s): the setup charged or not, periodic evaluations charged or not, evaluations
every so many seconds, a run that spent its budget skipped, the peak memory kept over resumed segments. The
harness's clock is virtual here (the ``clock`` fixture), so the figures are exact on a loaded machine."""

from types import SimpleNamespace

import pytest
import torch

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness import run as harness
from ppo_bench.llm.launch import validate
from ppo_bench.llm.algorithms.grpo.trainer import GRPOTrainer
from ppo_bench.llm.harness.run import LMRun
from ppo_bench.llm.launch import build_trainer, train_from_config

TINY = ["model=tiny", "task.n_eval=4", "eval.every=0", "eval.batch_size=4", "eval.max_new_tokens=2", "algo.max_completion_length=2",
        "algo.prompts_per_step=2", "algo.num_generations=2", "save_model=false", "torch_threads=1", "checkpoint_every=100"]


@pytest.fixture
def clock(monkeypatch):
    """The harness's clock made virtual: it moves only by what ``slow`` says the setup, a step and an evaluation
    take, so that every budget figure is exact whatever the machine's load."""
    now = SimpleNamespace(t=0.0)
    monkeypatch.setattr(harness, "time", SimpleNamespace(perf_counter=lambda: now.t))

    def slow(prepare_s=0.0, step_s=0.0, eval_s=0.0):
        def advancing(method, seconds):
            def run(self, *args, **kwargs):
                now.t += seconds
                return method(self, *args, **kwargs)
            return run

        monkeypatch.setattr(GRPOTrainer, "prepare", advancing(GRPOTrainer.prepare, prepare_s))
        monkeypatch.setattr(GRPOTrainer, "train_step", advancing(GRPOTrainer.train_step, step_s))
        monkeypatch.setattr(LMRun, "evaluate", advancing(LMRun.evaluate, eval_s))

    return slow


# the virtual seconds are binary fractions, so that sums of them are exact


@pytest.mark.parametrize("setup_in_wall", [False, True])
def test_setup_is_charged_only_when_asked(llm_cfg, clock, setup_in_wall):
    clock(prepare_s=0.5, step_s=0.125)
    trainer = build_trainer(llm_cfg(*TINY, "algo.steps=2", f"setup_in_wall={setup_in_wall}"))
    summary = trainer.train()
    before = next(e for e in summary["evals"] if e["step"] == 0)  # taken after the setup, before any step
    setup = 0.5 if setup_in_wall else 0.0
    assert before["wall_s"] == setup and trainer.wall_s == setup + 0.25


@pytest.mark.parametrize("in_wall", [True, False])
def test_periodic_evaluations_are_charged_only_when_asked(llm_cfg, clock, in_wall):
    clock(step_s=0.125, eval_s=0.25)
    trainer = build_trainer(llm_cfg(*TINY, "algo.steps=3", "eval.every=1", "eval.before=false", f"eval.in_wall={in_wall}"))
    summary = trainer.train()
    # two periodic evaluations, then the final one (never charged: the loop is over)
    assert [e["step"] for e in summary["evals"]] == [1, 2, 3]
    charged = 0.25 if in_wall else 0.0
    assert trainer.wall_s == 3 * 0.125 + 2 * charged
    # each evaluation records the wall_s it was taken at: the x axis of accuracy against time
    assert [e["wall_s"] for e in summary["evals"]] == [0.125, 0.25 + charged, 0.375 + 2 * charged]


def test_evaluations_every_so_many_seconds(llm_cfg, clock):
    clock(step_s=0.125, eval_s=4.0)
    summary = build_trainer(llm_cfg(*TINY, "algo.steps=8", "eval.every_s=0.3", "eval.before=false", "eval.in_wall=false")).train()
    # due once 0.3 s of wall_s passed since the last one: after steps 3 (0.375 s) and 6 (0.75 s); then the final one
    assert [e["step"] for e in summary["evals"]] == [3, 6, 8]


def test_bad_every_s_is_one_line(llm_cfg):
    with pytest.raises(ConfigError, match=r"eval.every_s=0.0 must be > 0"):
        validate(llm_cfg(*TINY, "eval.every_s=0"))


def test_a_run_that_spent_its_budget_is_skipped_and_a_larger_budget_extends_it(llm_cfg, clock):
    clock(step_s=0.125)
    args = [*TINY, "algo.steps=1000", "eval.before=false", "run_name=budget"]
    summary = train_from_config(llm_cfg(*args, "max_wall_s=0.5"))
    assert summary["stopped_by"] == "max_wall_s" and summary["steps"] == 4
    again = train_from_config(llm_cfg(*args, "max_wall_s=0.5"))
    assert again["skipped"] and again["steps"] == 4
    assert train_from_config(llm_cfg(*args, "max_wall_s=0.3"))["skipped"]  # a smaller budget: spent too
    longer = train_from_config(llm_cfg(*args, "max_wall_s=1.0"))  # a larger one: the run continues
    assert not longer.get("skipped") and longer["steps"] == 8


def test_peak_memory_is_the_largest_over_resumed_segments(llm_cfg):
    args = [*TINY, "algo.steps=2", "eval.before=false", "run_name=peak", "checkpoint_every=1"]
    first = build_trainer(llm_cfg(*args))
    first.a.steps = 1  # stopped after its first checkpoint, as if killed
    s = first.train()
    assert s["peak_rss_phase"] in {"loading", "setup", "step", "evaluation", "checkpoint", "other"}
    assert all(v <= s["peak_rss_mb"] for v in s["peak_rss_by_phase"].values())
    (first.run_dir / "status.json").unlink()
    state = torch.load(first.run_dir / "checkpoint.pt", weights_only=True)
    assert state["peak_rss_mb"] > 0
    state["peak_rss_mb"] = 1.0e9  # an earlier segment that peaked higher than this process ever will
    state["peak_rss_phase"] = "step"
    torch.save(state, first.run_dir / "checkpoint.pt")
    second = build_trainer(llm_cfg(*args)).train()
    assert second["peak_rss_mb"] == 1.0e9 and second["peak_rss_phase"] == "step"  # the segment's phase with its peak
