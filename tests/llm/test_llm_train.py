"""GRPO end to end on the tiny model: it learns, it logs, it checkpoints and resumes."""

import json
import os

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.common.errors import ConfigError, NonFiniteLoss
from scripts.fault_drill import Payload
from ppo_bench.llm.launch import build_trainer, train_from_config
from ppo_bench.common.run_folder import CHECKPOINT, PREVIOUS, RunLocks

TINY = ["model=tiny", "task.n_eval=8", "eval.every=0", "eval.batch_size=8", "eval.max_new_tokens=4",
        "algo.max_completion_length=4", "algo.prompts_per_step=4", "algo.num_generations=8", "save_model=false"]


def digit_fraction(prompt, completion, **_):
    """A trivial verifiable reward: the share of digits in the completion."""
    return sum(ch.isdigit() for ch in completion) / max(len(completion), 1)


def test_tiny_model_learns_a_trivial_reward(llm_cfg):
    cfg = llm_cfg(*TINY, "algo.steps=25", "algo.lr=3e-3", "eval.before=false", "checkpoint_every=100")
    trainer = build_trainer(cfg)
    trainer.algorithm.reward_fns = {"correct": digit_fraction}
    trainer.train()
    r = [h["rewards/mean"] for h in trainer.history]
    first, last = sum(r[:5]) / 5, sum(r[-5:]) / 5
    assert last > first + 0.3, r


@pytest.mark.parametrize("extra", [
    ["algo.beta=0.1", "algo.num_iterations=2", "algo.loss_type=dapo", "algo.epsilon_high=0.28"],
    ["algo.loss_type=dr_grpo", "algo.scale_rewards=none", "algo.lr_schedule=linear", "algo.warmup_steps=2"],
    ["algo.scale_rewards=batch", "algo.skip_zero_advantage=false", "algo.micro_batch_size=5"],
    ["dtype=bfloat16", "algo.beta=0.04"],  # autocast compute, float32 master weights (the GPU path, here on the CPU)
])
def test_options_run_and_log_the_expected_scalars(llm_cfg, extra):
    cfg = llm_cfg(*TINY, "algo.steps=2", "algo.lr=1e-3", "eval.every=1", "eval.periodic_n=4", *extra)
    trainer = build_trainer(cfg)
    assert (trainer.algorithm.ref is not None) == (cfg.algo.beta > 0)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    trainer.algorithm.reward_fns = {"correct": digit_fraction}
    summary = trainer.train()
    run = trainer.run_dir
    for f in ("config.yaml", "summary.json", "status.json", "checkpoint.pt"):
        assert (run / f).is_file()
    ea = EventAccumulator(str(run))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    for t in ("rewards/mean", "rewards/std", "rewards/correct/mean", "rewards/frac_zero_std", "losses/policy",
              "stats/clip_ratio/low", "stats/clip_ratio/high", "stats/completion_length/mean", "eval/accuracy",
              "charts/learning_rate", "perf/generation_s", "perf/logprobs_s", "perf/update_s"):
        assert t in tags, t
    assert ("stats/kl" in tags) == (cfg.algo.beta > 0)
    evals = {e["step"]: e["n"] for e in summary["evals"]}
    assert evals == {0: 8, 1: 4, 2: 8}  # before, periodic (subset), after
    assert set(summary["seconds_per_step"]) == {"generation", "reward", "logprobs", "update", "total"}
    assert summary["acc_before"] is not None and summary["acc_after"] is not None
    json.loads((run / "summary.json").read_text())


def test_a_killed_run_resumes_exactly(llm_cfg, tmp_path):
    straight = build_trainer(llm_cfg(*TINY, "algo.steps=4", "algo.lr=1e-3", "run_name=a", "eval.before=false"))
    straight.train()
    # the same run, stopped after 2 steps (as if killed after its checkpoint), then restarted
    first = build_trainer(llm_cfg(*TINY, "algo.steps=4", "algo.lr=1e-3", "run_name=b", "eval.before=false", "checkpoint_every=2"))
    first.a.steps = 2
    first.train()
    (first.run_dir / "status.json").unlink()
    second = build_trainer(llm_cfg(*TINY, "algo.steps=4", "algo.lr=1e-3", "run_name=b", "eval.before=false"))
    second.train()
    assert [h["rewards/mean"] for h in second.history] == [h["rewards/mean"] for h in straight.history]
    for p, q in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
    # finished: the same command skips it
    again = train_from_config(llm_cfg(*TINY, "algo.steps=4", "algo.lr=1e-3", "run_name=b", "eval.before=false"))
    assert again["skipped"] and again["steps"] == 4


def test_a_damaged_last_checkpoint_resumes_exactly_from_the_previous_one(llm_cfg, capsys):
    args = [*TINY, "algo.steps=3", "algo.lr=1e-3", "eval.before=false"]
    straight = build_trainer(llm_cfg(*args, "run_name=a"))
    straight.train()
    first = build_trainer(llm_cfg(*args, "run_name=b", "checkpoint_every=1"))
    first.a.steps = 2  # killed after its second checkpoint, which is then damaged
    first.train()
    run = first.run_dir
    (run / "status.json").unlink()
    assert (run / PREVIOUS).is_file()
    os.truncate(run / CHECKPOINT, 500)
    capsys.readouterr()
    second = build_trainer(llm_cfg(*args, "run_name=b"))
    second.train()
    assert "continuing from the previous checkpoint" in capsys.readouterr().err
    assert (run / "checkpoint.corrupt.pt").is_file()  # set aside, not rotated over the good previous one
    assert [h["rewards/mean"] for h in second.history] == [h["rewards/mean"] for h in straight.history]
    for p, q in zip(straight.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)



def test_a_checkpoint_is_read_as_data_and_a_run_folder_is_one_process(llm_cfg, tmp_path):
    args = [*TINY, "algo.steps=2", "eval.before=false", "checkpoint_every=1"]
    first = build_trainer(llm_cfg(*args))
    first.a.steps = 1
    first.train()
    run = first.run_dir
    (run / "status.json").unlink()
    # another process holds the folder: refused in one line before anything is read or written
    with RunLocks([run]):
        before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
        with pytest.raises(ConfigError, match="is in use by process") as e:
            train_from_config(llm_cfg(*args))
    assert "\n" not in str(e.value) and {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    # a checkpoint whose unpickling would run a command: refused in one line naming it; the command never runs
    # (with a readable previous checkpoint the run would go on from it, with a warning: it is removed here)
    marker = tmp_path / "pwned"
    (run / PREVIOUS).unlink()
    torch.save({"step": 1, "model": {}, "x": Payload(marker)}, run / CHECKPOINT)
    with pytest.raises(ConfigError, match=f"checkpoint {run / CHECKPOINT} is unreadable .*holds objects other than") as e:
        train_from_config(llm_cfg(*args))
    assert "\n" not in str(e.value) and not marker.exists()
    # a readable checkpoint of something else (e.g. a ppo-bench population's) is named, not half-loaded
    torch.save({"global_step": 64, "policy": {}}, run / CHECKPOINT)
    with pytest.raises(ConfigError, match="lacks step, updates, model.*not a ppo-bench-llm checkpoint"):
        train_from_config(llm_cfg(*args))


def test_non_finite_loss_stops_the_run_and_keeps_its_checkpoint(llm_cfg, monkeypatch):
    trainer = build_trainer(llm_cfg(*TINY, "algo.steps=3", "checkpoint_every=1", "eval.before=false", "algo.skip_zero_advantage=false"))
    from ppo_bench.llm.algorithms.grpo import trainer as T

    real = T.grpo_loss
    monkeypatch.setattr(T, "grpo_loss", lambda *a, **k: (real(*a, **k)[0] * (float("nan") if trainer.step == 1 else 1.0), real(*a, **k)[1]))
    with pytest.raises(NonFiniteLoss, match="step 2"):
        trainer.train()
    assert json.loads((trainer.run_dir / "status.json").read_text())["status"] == "failed"
    assert torch.load(trainer.run_dir / CHECKPOINT, weights_only=True)["step"] == 1


def test_truncated_completions_scored_zeroed_or_masked(llm_cfg):
    # a random tiny model rarely emits its EOS within 4 tokens: most completions are truncated
    for mode in ("score", "zero", "mask"):
        trainer = build_trainer(llm_cfg(*TINY, "algo.steps=2", "eval.before=false", f"algo.truncated={mode}",
                                        "algo.skip_zero_advantage=false", f"run_name={mode}"))
        trainer.algorithm.reward_fns = {"correct": lambda p, c, **_: 1.0}
        trainer.train()
        for h in trainer.history:
            finished = 1.0 - h["stats/completion_truncated"]
            assert h["rewards/mean"] == pytest.approx(finished if mode == "zero" else 1.0)
            assert h["stats/update_rows"] == pytest.approx(finished if mode == "mask" else 1.0)
