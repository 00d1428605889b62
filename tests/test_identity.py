"""A run's identity (ppo_bench.common.identity): relaunching onto a run folder trained with other settings is
refused in one line naming every differing key, before anything is written; the same settings continue."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.engine.config import schema_defaults
from ppo_bench.common.errors import ConfigError
from scripts.fault_drill import snapshot
from ppo_bench.common.identity import (ABSENT, IDENTITY, check_identity, differences, fingerprint, flatten, stored_keys,
                                training_keys, write_identity)

REPO = Path(__file__).resolve().parent.parent
TINY = ["env=inverted_pendulum", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=1",
        "total_timesteps=128", "checkpoint_every=1"]


def test_training_keys_flatten_and_leave_out_prefixes():
    cfg = {"algo": {"lr": 3e-4}, "total_timesteps": 10, "env": {"kwargs": {}, "id": "X"}, "run_root": "/a",
           "progress": "never", "model": {"hidden": [64, 64]}}
    assert flatten(cfg)["env.kwargs"] == {} and flatten(cfg)["model.hidden"] == [64, 64]
    keys = training_keys(cfg, ("run_root", "progress", "total_timesteps"))
    assert keys == {"env.id": "X", "env.kwargs": {}, "model.hidden": [64, 64], "algo.lr": 3e-4}
    assert fingerprint(keys) == fingerprint(dict(reversed(list(keys.items()))))  # order does not matter
    assert fingerprint(keys) != fingerprint({**keys, "algo.lr": 1e-3})


def test_differences_tolerate_a_new_key_at_its_default_only():
    stored = {"algo.lr": 3e-4, "algo.epochs": 10, "old.key": 1}
    current = {"algo.lr": 3e-4, "algo.epochs": 10, "ppo.new": False, "ppo.other_new": 0.5}
    defaults = {"ppo.new": False, "ppo.other_new": 0.0}
    # a new key at its default is no difference; a new key set otherwise is; a removed key is
    assert differences(stored, current, defaults) == [("old.key", 1, ABSENT), ("ppo.other_new", ABSENT, 0.5)]
    assert differences({"a": [64, 64]}, {"a": [64, 64]}) == []
    assert differences({"a": 1}, {"a": 1.5}) == [("a", 1, 1.5)]


def test_numbers_compare_by_value_and_booleans_are_not_numbers():
    # 1 and 1.0 are one setting, inside lists and mappings too, and so one fingerprint; true is not 1
    assert differences({"a": 1, "b": [64, 2.0], "c": {"w": 1}}, {"a": 1.0, "b": [64.0, 2], "c": {"w": 1.0}}) == []
    assert fingerprint({"a": 1, "b": [2.0]}) == fingerprint({"a": 1.0, "b": [2]})
    assert differences({"c": True, "d": 0}, {"c": 1, "d": False}) == [("c", True, 1), ("d", 0, False)]
    assert differences({"a": 1}, {"a": 1.0000001}) == [("a", 1, 1.0000001)]
    assert differences({"a": float("inf")}, {"a": float("inf")}) == []


def test_a_folder_without_identity_json_is_checked_against_its_config_yaml(tmp_path):
    (tmp_path / "config.yaml").write_text("run_root: /x\nalgo:\n  lr: 0.0003\n  epochs: 10\n")
    assert stored_keys(tmp_path, ("run_root",)) == {"algo.epochs": 10, "algo.lr": 0.0003}
    check_identity(tmp_path, {"algo.epochs": 10.0, "algo.lr": 0.0003}, ("run_root",))  # the same run: no error
    with pytest.raises(ConfigError) as e:
        check_identity(tmp_path, {"algo.epochs": 3, "algo.lr": 0.0003}, ("run_root",), remedy="do this")
    assert str(e.value) == f"run {tmp_path} was trained with other settings: algo.epochs: 10 (the run) vs 3 (now); do this"
    # identity.json, once there, is the identity; an empty folder has none; an unreadable config.yaml is one line
    write_identity(tmp_path, {"algo.epochs": 3, "algo.lr": 0.0003})
    check_identity(tmp_path, {"algo.epochs": 3, "algo.lr": 0.0003}, ("run_root",))
    assert stored_keys(tmp_path / "empty") is None
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text("ppo: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{tmp_path}/old/config.yaml is unreadable"):
        stored_keys(tmp_path / "old")


def test_relaunch_with_other_settings_is_refused_before_anything_is_written(make_cfg, tmp_path):
    root = tmp_path / "runs"
    train_from_config(make_cfg(*TINY))
    before = snapshot(root)
    for overrides, message in [
        (["algo.lr=0.01", "algo.epochs=3"], "algo.epochs: 1 (the run) vs 3 (now), algo.lr: 0.0003 (the run) vs 0.01 (now)"),
        (["model.hidden=[32,32]"], "model.hidden: [64,64] (the run) vs [32,32] (now)"),
        (["env.num_envs=2"], "env.num_envs: 1 (the run) vs 2 (now)"),
    ]:
        with pytest.raises(ConfigError, match="was trained with other settings") as e:
            train_from_config(make_cfg(*TINY, "resume=true", *overrides))
        assert message in str(e.value) and "\n" not in str(e.value)
        assert snapshot(root) == before  # nothing written, the finished run's config.yaml included
    # another objective setting is another run folder: trained beside it, not refused
    other = train_from_config(make_cfg(*TINY, "resume=auto", "objective.eps=0.1"))
    assert other["InvertedPendulum-v5/clip_eps0.1/seed0"]["status"] == "finished"
    # the same settings skip the finished run; a raised total_timesteps (the documented exception) extends it
    again = train_from_config(make_cfg(*TINY, "resume=true"))
    assert again["InvertedPendulum-v5/clip_eps0.2/seed0"]["status"] == "finished (skipped)"
    longer = train_from_config(make_cfg(*TINY, "resume=true", "total_timesteps=192"))
    assert longer["InvertedPendulum-v5/clip_eps0.2/seed0"]["global_step"] == 192


def as_written_by_0_1(run: Path) -> None:
    """Rewrite a run folder as ppo-bench 0.1 wrote it: PPO's settings under ppo.* (the budget among them), the
    algo group's rollout keys their copies, in identity.json and config.yaml alike."""
    stored = json.loads((run / IDENTITY).read_text())
    keys = stored["config"]
    is_ppo = keys["algo.name"] == "ppo"
    old = {k: v for k, v in keys.items() if not (is_ppo and k.startswith("algo.") and k != "algo.name")}
    old.update({f"ppo.{k[len('algo.'):]}": v for k, v in keys.items() if is_ppo and k.startswith("algo.") and k != "algo.name"})
    old.update({"algo.num_steps": keys["algo.num_steps"], "algo.gamma": keys["algo.gamma"],
                "algo.gae_lambda": keys["algo.gae_lambda"]})
    if not is_ppo:  # every algorithm's identity held PPO's settings, at their defaults
        old.update({"ppo.lr": 3e-4, "ppo.epochs": 10})
    # with the fingerprint of its keys, as every identity.json was written
    (run / IDENTITY).write_text(json.dumps({**stored, "fingerprint": fingerprint(old), "config": dict(sorted(old.items()))}))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["ppo"] = {**({k: v for k, v in config["algo"].items() if k != "name"} if is_ppo else {}),
                     "total_timesteps": config.pop("total_timesteps")}
    (run / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("algo", ["ppo", "vpg"])
def test_runs_of_ppo_bench_0_1_resume_and_read_in_todays_names(make_cfg, tmp_path, algo):
    """A run written before PPO's ppo.* settings became algo.* (and ppo.total_timesteps total_timesteps) is the
    same run: skipped when finished, extended by a raised budget, refused with today's key names when the
    settings differ, and read by the report in today's names."""
    from ppo_bench.analysis.runs import load_run
    from ppo_bench.analysis.sweep import load_sweep_run

    small = [*TINY, f"algo={algo}"] + (["algo.vf_minibatch_size=32"] if algo == "vpg" else [])
    small = [o for o in small if algo == "ppo" or o.split("=")[0] not in ("algo.minibatch_size", "algo.epochs")]
    name = f"InvertedPendulum-v5/{'clip_eps0.2' if algo == 'ppo' else algo}/seed0"
    train_from_config(make_cfg(*small))
    run = tmp_path / "runs" / name
    as_written_by_0_1(run)
    assert "ppo" in yaml.safe_load((run / "config.yaml").read_text())
    assert train_from_config(make_cfg(*small, "resume=true"))[name]["status"] == "finished (skipped)"
    assert load_run(run).total_timesteps == 128
    sweep_run = load_sweep_run(run, [])
    assert not any(k.startswith("ppo.") for k in sweep_run.config) and sweep_run.config["total_timesteps"] == 128
    if algo == "ppo":
        assert sweep_run.config["algo.lr"] == 3e-4
        with pytest.raises(ConfigError, match=r"algo.lr: 0.0003 \(the run\) vs 0.001 \(now\)"):
            train_from_config(make_cfg(*small, "resume=true", "algo.lr=0.001"))
    longer = train_from_config(make_cfg(*small, "resume=true", "total_timesteps=192"))
    assert longer[name]["global_step"] == 192


def test_a_key_added_later_at_its_default_keeps_old_runs_and_old_runs_without_identity_are_checked(make_cfg, tmp_path):
    run = tmp_path / "runs" / "InvertedPendulum-v5/clip_eps0.2/seed0"
    train_from_config(make_cfg(*TINY, "total_timesteps=64"))
    stored = json.loads((run / IDENTITY).read_text())
    assert stored["config"]["algo.anneal_lr"] == schema_defaults("ppo")["algo.anneal_lr"]
    # a run written by a version without algo.anneal_lr: continuing at its default is the same run
    del stored["config"]["algo.anneal_lr"]
    stored["fingerprint"] = fingerprint(stored["config"])  # as that version wrote it
    (run / IDENTITY).write_text(json.dumps(stored))
    assert train_from_config(make_cfg(*TINY, "resume=true"))["InvertedPendulum-v5/clip_eps0.2/seed0"]["status"] == "finished"
    (run / IDENTITY).write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match=r"algo.anneal_lr: \(absent\) \(the run\) vs true \(now\)"):
        train_from_config(make_cfg(*TINY, "resume=true", "total_timesteps=192",
                                   f"algo.anneal_lr={not schema_defaults('ppo')['algo.anneal_lr']}"))
    # a run from before identity.json: its config.yaml is its identity
    (run / IDENTITY).unlink()
    with pytest.raises(ConfigError, match=r"algo.lr: 0.0003 \(the run\) vs 0.001 \(now\)"):
        train_from_config(make_cfg(*TINY, "resume=true", "algo.lr=0.001"))


def test_resume_true_needs_the_runs_and_auto_starts_them(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=f"resume=true but no run of this launch exists in {tmp_path}/typo"):
        train_from_config(make_cfg(*TINY, "resume=true", f"run_root={tmp_path}/typo"))
    assert not (tmp_path / "typo").exists()
    out = train_from_config(make_cfg(*TINY, "resume=auto", f"run_root={tmp_path}/new"))
    assert [s["status"] for s in out.values()] == ["finished"]
    with pytest.raises(ConfigError, match="resume='maybe' is not allowed; allowed: true, false, auto"):
        train_from_config(make_cfg(*TINY, "resume=maybe"))


INTERRUPT_SCRIPT = """
import signal, sys
from ppo_bench.rl import cli
from ppo_bench.rl.engine.trainer import PopulationTrainer
orig_log = PopulationTrainer.log
def log(self, *a):
    orig_log(self, *a)
    if int(self.iteration[0]) == 1:
        signal.raise_signal(signal.SIGINT)
PopulationTrainer.log = log
sys.argv = ["ppo-bench", *sys.argv[1:]]
cli.main()
"""


def test_the_interrupt_message_prints_the_command_that_resumes(tmp_path):
    env = {**os.environ, "CI": "1", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(REPO)}
    args = [*TINY, "total_timesteps=192", "progress=never", f"hydra.run.dir={tmp_path}/out", "algo.lr=0.001"]
    r = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, *args], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 128 + signal.SIGINT, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("interrupted:")]
    command = line.split("to resume: ")[1]
    assert command.startswith("ppo-bench ") and "algo.lr=0.001" in command and "resume=true" in command
    assert f"run_root={tmp_path}/out" in command and "hydra.run.dir" not in command
    # run it (from another folder: the command names the run folder absolutely)
    r = subprocess.run([sys.executable, "-m", "ppo_bench", *command.split()[1:], f"hydra.run.dir={tmp_path}/o2"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    status = json.loads((tmp_path / "out/InvertedPendulum-v5/clip_eps0.2/seed0/status.json").read_text())
    assert status["status"] == "finished" and status["global_step"] == 192
