"""An LM run's identity (ppo_bench.common.identity, the PPO app's own): identity.json in the run folder; a relaunch
with other settings refused in one line naming every differing key with both values, before anything is
written; the same settings skip a finished run, a larger algo.steps extends it; a folder from before
identity.json is checked against its config.yaml."""

import json

import pytest

from ppo_bench.common.errors import ConfigError
from scripts.fault_drill import snapshot
from ppo_bench.common.identity import IDENTITY, fingerprint
from ppo_bench.llm.harness.run import identity_keys
from ppo_bench.llm.launch import train_from_config


TINY = ["model=tiny", "task=reverse", "task.n_eval=4", "eval.every=0", "eval.batch_size=4", "eval.max_new_tokens=4",
        "algo.max_completion_length=4", "algo.prompts_per_step=2", "algo.num_generations=4", "save_model=false",
        "torch_threads=1", "eval.before=false", "run_name=r"]
REMEDY = "relaunch with the run's settings, or choose another run_name or run_root"


def refused(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        train_from_config(cfg)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_relaunches_skip_extend_or_refuse_by_the_runs_identity(llm_cfg, tmp_path, monkeypatch):
    run = tmp_path / "runs" / "r"
    assert train_from_config(llm_cfg(*TINY, "algo.steps=1"))["steps"] == 1
    stored = json.loads((run / IDENTITY).read_text())
    assert stored["config"] == identity_keys(llm_cfg(*TINY, "algo.steps=1")) and stored["steps"] == 1
    # paths, logging, the evaluations' schedule and the run's length are left out; what evaluations measure is not
    for key in ("run_name", "run_root", "algo.steps", "algo.run_tag", "eval.every", "checkpoint_every", "max_wall_s"):
        assert key not in stored["config"], key
    assert stored["config"]["eval.max_new_tokens"] == 4 and stored["config"]["algo.temperature"] == 1.0

    before = snapshot(run, skip=(".lock",))  # the lock file names its latest holder
    message = refused(llm_cfg(*TINY, "algo.steps=1", "algo.temperature=1.5", "algo.lr=0.01"))
    assert message == (f"run {run} was trained with other settings: algo.lr: 1e-06 (the run) vs 0.01 (now), "
                       f"algo.temperature: 1.0 (the run) vs 1.5 (now); {REMEDY}")
    assert "eval.max_new_tokens: 4 (the run) vs 8 (now)" in refused(llm_cfg(*TINY, "algo.steps=1", "eval.max_new_tokens=8"))
    assert snapshot(run, skip=(".lock",)) == before  # nothing written

    # the same settings skip it, whatever the logging and evaluation schedule
    same = train_from_config(llm_cfg(*TINY, "algo.steps=1", "eval.every=1", "checkpoint_every=5", "log_completions=0"))
    assert same["skipped"] and same["steps"] == 1
    # numbers by value: a stored 1 is the 1.0 asked for now; true is not 1; a key added later counts at its default only
    # (the identities an older version wrote, each with the fingerprint of its own keys, as written)
    edited = {**stored, "config": {**stored["config"], "algo.temperature": 1, "task.rewards.correct": 1}}
    del edited["config"]["algo.adv_eps"]
    (run / IDENTITY).write_text(json.dumps({**edited, "fingerprint": fingerprint(edited["config"])}))
    assert train_from_config(llm_cfg(*TINY, "algo.steps=1"))["skipped"]
    assert "algo.adv_eps: (absent) (the run) vs 0.001 (now)" in refused(llm_cfg(*TINY, "algo.steps=1", "algo.adv_eps=1e-3"))
    chat = {**edited["config"], "task.chat": 1}
    (run / IDENTITY).write_text(json.dumps({**edited, "config": chat, "fingerprint": fingerprint(chat)}))
    assert "task.chat: 1 (the run) vs true (now)" in refused(llm_cfg(*TINY, "algo.steps=1"))

    # a run from before identity.json: its config.yaml is its identity; resumed, it gets an identity.json
    (run / IDENTITY).unlink()
    assert train_from_config(llm_cfg(*TINY, "algo.steps=1"))["skipped"]
    assert refused(llm_cfg(*TINY, "algo.steps=1", "algo.temperature=1.5")) == (
        f"run {run} was trained with other settings: algo.temperature: 1.0 (the run) vs 1.5 (now); {REMEDY}")
    assert not (run / IDENTITY).exists()
    longer = train_from_config(llm_cfg(*TINY, "algo.steps=2"))  # a larger algo.steps extends the finished run
    assert not longer.get("skipped") and longer["steps"] == 2 and [e["step"] for e in longer["evals"]] == [1, 2]
    assert json.loads((run / IDENTITY).read_text()) == {**stored, "steps": 2}

    # resume=false never starts a run over in its own folder: nothing it holds is deleted (before any weights load)
    before = snapshot(run, skip=(".lock",))
    monkeypatch.setattr("ppo_bench.llm.launch.build_trainer", lambda cfg: pytest.fail("weights loaded"))
    message = refused(llm_cfg(*TINY, "algo.steps=2", "algo.temperature=1.5", "resume=false"))
    assert message == (f"{run} holds a run's checkpoint (checkpoint.pt); resume=true continues it; move that folder "
                       "away, or choose another run_root")
    assert snapshot(run, skip=(".lock",)) == before
