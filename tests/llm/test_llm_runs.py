"""What a user is told about LM runs is true: swept settings get their own folders, steps without an
update are counted as such, and a preference file that is not UTF-8 is one line."""

import subprocess
import sys

import pytest

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.cli import report, sweep_run_name
from ppo_bench.llm.harness.config import run_name
from ppo_bench.llm.harness.preferences import read_jsonl
from ppo_bench.llm.launch import build_trainer

TINY = ["model=tiny", "task=reverse", "task.n_eval=4", "eval.every=0", "eval.batch_size=4", "eval.max_new_tokens=4",
        "algo.max_completion_length=4", "algo.prompts_per_step=2", "algo.num_generations=4", "save_model=false",
        "torch_threads=1"]


def test_a_sweep_over_a_key_outside_the_run_name_gets_one_folder_per_value(llm_cfg):
    argv = ["-m", "model=tiny", "task=reverse", "algo.steps=4", "algo.temperature=0.5,1.5"]
    extra = sweep_run_name(argv)
    assert extra is not None and "${algo.temperature}" in extra
    names = {run_name(llm_cfg("model=tiny", "task=reverse", f"algo.temperature={t}", extra)) for t in (0.5, 1.5)}
    assert len(names) == 2, names
    # keys the name already spells out, single runs, and user-named runs are left alone
    assert sweep_run_name(["-m", "algo.loss_type=grpo,dapo", "seed=0,1", "algo.lr=1e-5,1e-4"]) is None
    assert sweep_run_name(["algo.temperature=0.5,1.5"]) is None
    assert sweep_run_name(["-m", "algo.temperature=0.5,1.5", "run_name=mine"]) is None


def test_steps_without_a_learning_signal_are_reported_as_steps_without_an_update(llm_cfg, capsys):
    run = build_trainer(llm_cfg(*TINY, "algo.steps=2", "eval.before=false"))
    run.algorithm.reward_fns = {"correct": lambda p, c, **_: 1.2}  # every group equal (and 1.2 is not exact in float32)
    summary = run.train()
    assert summary["steps"] == 2 and summary["updates"] == 0
    assert all(h["rewards/frac_zero_std"] == 1.0 and h["stats/optimizer_steps"] == 0 for h in run.history)
    report({**summary, "run_dir": str(run.run_dir)})
    out = capsys.readouterr().out
    assert "2 GRPO steps" in out and "0 of them with an update" in out, out


def test_a_preference_file_that_is_not_utf8_is_one_line_with_exit_code_2(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"prompt": "x", "chosen": "y", "rejected": "z"}\n{"prompt": "caf\u00e9", "chosen": "y", "rejected": "z"}\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r":2: not UTF-8 text \(byte 0xe9\)"):
        read_jsonl(bad)
    r = subprocess.run([sys.executable, "-m", "ppo_bench.llm.cli", f"run_root={tmp_path}", "algo=dpo", "model=tiny",
                        f"algo.data_file={bad}"], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "not UTF-8" in lines[0], r.stderr


@pytest.mark.parametrize("algo", ["grpo", "dpo"])
def test_eval_after_false_skips_the_final_evaluation_and_reports_no_after(llm_cfg, algo):
    """eval.after=false (a run that ppo-bench-llm-eval evaluates anyway): no evaluation at the last step, so nothing is
    reported as "after" — neither the accuracy nor DPO's training-pair figures of an earlier evaluation."""
    cfg = [*TINY, f"algo={algo}", "algo.steps=3", "eval.every=2", "checkpoint_every=1"]
    if algo == "dpo":
        cfg = [c for c in cfg if not c.startswith(("algo.max_completion", "algo.prompts", "algo.num_gen"))]
        cfg += ["algo.batch_size=2", "algo.num_prompts=4", "algo.num_samples=2"]
    run = build_trainer(llm_cfg(*cfg, "eval.after=false"))
    summary = run.train()
    assert summary["steps"] == 3 and [e["step"] for e in summary["evals"]] == [0, 2]
    assert summary["acc_before"] is not None and summary["acc_after"] is None and run.final_eval() is None
    if algo == "dpo":
        assert summary["train_pairs_before"] is not None and summary["train_pairs_after"] is None
    again = build_trainer(llm_cfg(*cfg)).train()  # the default evaluates the finished run's last step
    assert again["steps"] == 3 and again["acc_after"] is not None and [e["step"] for e in again["evals"]] == [0, 2, 3]
