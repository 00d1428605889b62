"""Whole runs: resume after a kill is bit-identical, a short CartPole run learns, faults stay local."""

import json
import signal
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.rl.engine import trainer as train_mod
from ppo_bench.rl.launch import population_specs, train_from_config
from ppo_bench.common.preemption import Interrupted
from ppo_bench.rl.engine.trainer import CHECKPOINT, PopulationTrainer
from ppo_bench.rl.engine.updates import minibatches

FAST = ["algo.num_steps=128", "algo.minibatch_size=32", "algo.epochs=2", "total_timesteps=512",
        "checkpoint_every=2"]


class Killed(BaseException):
    pass


@pytest.mark.parametrize("env, compiled", [("cartpole", False), ("inverted_pendulum", False),
                                           ("inverted_pendulum", True)])
def test_resume_after_kill_is_bit_identical(make_cfg, tmp_path, monkeypatch, env, compiled):
    pop = ["population.seeds=[0,1]", "population.objectives=[{name:clip},{name:kl_adaptive}]",
           "env.reward_scale=true", f"compile={compiled}"]
    straight = make_cfg(f"env={env}", *FAST, *pop, f"run_root={tmp_path}/a")
    final_straight = {}
    orig_train = PopulationTrainer.train

    def keep_params(self):
        out = orig_train(self)
        for r, s in enumerate(self.specs):
            final_straight[s.name] = self.model.flat[r].detach().clone()
        return out

    monkeypatch.setattr(PopulationTrainer, "train", keep_params)
    train_from_config(straight)
    monkeypatch.setattr(PopulationTrainer, "train", orig_train)

    # the same runs, killed in iteration 3 (of 4) after its events reached disk but before the next
    # checkpoint: the checkpoint of iteration 2 is what a resume finds
    killed = make_cfg(f"env={env}", *FAST, *pop, f"run_root={tmp_path}/b")
    orig_log = PopulationTrainer.log

    def log_then_die(self, *args):
        orig_log(self, *args)
        if int(self.iteration[0]) == 3:
            for lg in self.loggers:
                lg.flush()
            raise Killed()

    monkeypatch.setattr(PopulationTrainer, "log", log_then_die)
    with pytest.raises(Killed):
        train_from_config(killed)
    monkeypatch.setattr(PopulationTrainer, "log", orig_log)
    assert torch.load(f"{tmp_path}/b/{next(iter(final_straight))}/{CHECKPOINT}", weights_only=False)["iteration"] == 2

    with pytest.raises(Exception, match="resume=true"):
        train_from_config(killed)  # a checkpoint is there and resume is off
    resumed = make_cfg(f"env={env}", *FAST, *pop, f"run_root={tmp_path}/b", "resume=true")
    summary = train_from_config(resumed)
    assert len(summary) == 4
    for name, s in summary.items():
        assert s["status"] == "finished" and s["global_step"] == 512
        ckpt = torch.load(f"{tmp_path}/b/{name}/{CHECKPOINT}", weights_only=False)
        flat = torch.cat([v.flatten() for v in ckpt["model"].values()])
        ref = torch.load(f"{tmp_path}/a/{name}/{CHECKPOINT}", weights_only=False)
        assert torch.equal(flat, torch.cat([v.flatten() for v in ref["model"].values()]))
        assert ckpt["hparams"] == ref["hparams"]  # adaptive β too
        # the events the killed process logged after its checkpoint are purged: no step logged twice
        events = EventAccumulator(f"{tmp_path}/b/{name}").Reload()
        steps = [e.step for e in events.Scalars("losses/policy")]
        assert steps == sorted(set(steps)) == [128, 256, 384, 512]
        ref_returns = EventAccumulator(f"{tmp_path}/a/{name}").Reload().Scalars("charts/episodic_return")
        got_returns = events.Scalars("charts/episodic_return")
        assert [(e.step, e.value) for e in got_returns] == [(e.step, e.value) for e in ref_returns]
    # a third launch finds every run finished and trains nothing
    again = train_from_config(resumed)
    assert all(s["status"] == "finished (skipped)" for s in again.values())
    # asked for more steps, the finished runs continue from where they stopped
    longer = train_from_config(make_cfg(f"env={env}", *FAST, *pop, f"run_root={tmp_path}/b", "resume=true",
                                        "total_timesteps=640"))
    assert all(s["status"] == "finished" and s["global_step"] == 640 for s in longer.values())



def test_sigterm_checkpoints_every_run_after_the_iteration_and_resume_matches(make_cfg, tmp_path, monkeypatch):
    """A preempted job (SIGTERM) keeps the iteration it was in: every run is checkpointed there, not at
    the last periodic checkpoint, and the resumed runs end where an uninterrupted job ends."""
    opts = ["env=cartpole", *FAST, "checkpoint_every=100", "population.seeds=[0,1]"]
    straight = train_from_config(make_cfg(*opts, f"run_root={tmp_path}/a"))
    orig_log = PopulationTrainer.log

    def log_then_sigterm(self, *args):
        orig_log(self, *args)
        if int(self.iteration[0]) == 3:
            signal.raise_signal(signal.SIGTERM)  # arrives mid-job; the handler only records it

    monkeypatch.setattr(PopulationTrainer, "log", log_then_sigterm)
    with pytest.raises(Interrupted, match="SIGTERM"):
        train_from_config(make_cfg(*opts, f"run_root={tmp_path}/b"))
    monkeypatch.setattr(PopulationTrainer, "log", orig_log)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone with the trainer
    for name in straight:
        assert torch.load(f"{tmp_path}/b/{name}/{CHECKPOINT}", weights_only=False)["iteration"] == 3
        assert json.loads((tmp_path / "b" / name / "status.json").read_text())["status"] == "running"
    resumed = train_from_config(make_cfg(*opts, f"run_root={tmp_path}/b", "resume=true"))
    for name in straight:
        assert resumed[name]["status"] == "finished"
        a = torch.load(f"{tmp_path}/a/{name}/{CHECKPOINT}", weights_only=False)["model"]
        b = torch.load(f"{tmp_path}/b/{name}/{CHECKPOINT}", weights_only=False)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


SECOND_SIGNAL_SCRIPT = """
import signal, sys
from hydra import compose, initialize_config_dir
from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.engine.config import CONF_DIR
from ppo_bench.rl.engine.trainer import PopulationTrainer
orig_log, orig_save = PopulationTrainer.log, PopulationTrainer.save_checkpoint
def log(self, *a):
    orig_log(self, *a)
    if int(self.iteration[0]) == 3:
        signal.raise_signal(signal.SIGTERM)
def save(self, r, finished=False):
    if int(self.iteration[0]) == 3 and r == 0:
        signal.raise_signal(signal.SIGTERM)  # a second signal while the final checkpoints are written
    orig_save(self, r, finished)
PopulationTrainer.log, PopulationTrainer.save_checkpoint = log, save
with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
    cfg = compose("config", overrides=sys.argv[1:])
train_from_config(cfg)
"""


def test_a_second_sigterm_waits_for_the_final_checkpoints(tmp_path):
    opts = ["env=cartpole", *FAST, "checkpoint_every=100", "population.seeds=[0,1,2]", f"run_root={tmp_path}",
            "progress=never"]
    r = subprocess.run([sys.executable, "-c", SECOND_SIGNAL_SCRIPT, *opts], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGTERM, r.stderr  # the second signal kills it, after the checkpoints
    ckpts = sorted(tmp_path.glob("*/*/seed*/" + CHECKPOINT))
    assert len(ckpts) == 3
    assert all(torch.load(c, weights_only=False)["iteration"] == 3 for c in ckpts)

def test_short_cartpole_run_learns(make_cfg):
    cfg = make_cfg("env=cartpole", "algo.num_steps=256", "total_timesteps=12288", "algo.minibatch_size=64",
                   "algo.epochs=10", "population.seeds=[0,1]")
    summary = train_from_config(cfg)
    for name, s in summary.items():
        events = EventAccumulator(s["dir"]).Reload()
        returns = [e.value for e in events.Scalars("charts/episodic_return")]
        first, last = sum(returns[:10]) / 10, sum(returns[-10:]) / 10
        assert first < 40, (name, first)  # a random policy balances ~20 steps
        assert last > 3 * first and last > 75, (name, first, last)


def test_run_folder_holds_config_scalars_hparams_and_checkpoint(make_cfg):
    cfg = make_cfg("env=pendulum", *FAST, "objective=kl_adaptive")
    summary = train_from_config(cfg)
    (name, s), = summary.items()
    assert name == "Pendulum-v1/kl_adaptive_beta1_kl_target0.01/seed0"
    events = EventAccumulator(s["dir"]).Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("charts/episodic_return", "charts/episodic_length", "losses/policy", "losses/value",
                "losses/entropy", "stats/approx_kl", "stats/kl", "stats/beta", "stats/ratio_mean",
                "stats/ratio_max", "charts/learning_rate", "perf/sps"):
        assert tag in tags, tag
    assert "stats/clipfrac" not in tags  # only clip objectives have an ε to count against
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins
    text = (s["dir"] + "/config.yaml")
    assert "kl_target: 0.01" in open(text).read()
    status = json.loads(open(s["dir"] + "/status.json").read())
    assert status["status"] == "finished" and status["global_step"] == 512


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_non_finite_loss_stops_only_that_run_and_keeps_its_checkpoint(make_cfg, monkeypatch, capsys, compiled):
    cfg = make_cfg("env=cartpole", *FAST, "population.seeds=[0,1,2]", f"compile={compiled}")
    orig = PopulationTrainer.batch

    def poisoned(self):
        out = orig(self)
        if int(self.iteration[1]) == 2:  # after run 1's checkpoint at iteration 2
            out["adv"][1] = float("nan")
        return out

    monkeypatch.setattr(PopulationTrainer, "batch", poisoned)
    summary = train_from_config(cfg)
    statuses = {name.split("/")[-1]: s["status"] for name, s in summary.items()}
    assert statuses == {"seed0": "finished", "seed1": "failed", "seed2": "finished"}
    err = capsys.readouterr().err
    assert "seed1 stopped at iteration 2" in err and "non-finite loss" in err
    run1 = [s for n, s in summary.items() if n.endswith("seed1")][0]["dir"]
    ckpt = torch.load(f"{run1}/{CHECKPOINT}", weights_only=False)
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert json.loads(open(f"{run1}/status.json").read())["status"] == "failed"


def test_time_limit_truncation_and_autoreset_rows_in_the_rollout(make_cfg):
    # Pendulum-v1 never terminates and truncates at 200 steps: rows 199 and 400 end episodes,
    # rows 200 and 401 are NEXT_STEP reset rows (reward 0, masked out of GAE and the loss)
    cfg = make_cfg("env=pendulum", "algo.num_steps=450", "algo.minibatch_size=50")
    t = train_mod.PopulationTrainer(cfg, population_specs(cfg))
    t.collect()
    b = t.buf
    assert not b.terminated.any()
    assert b.truncated[:, 0, 0].nonzero()[0].tolist() == [199, 400]
    assert (~b.valid[:, 0, 0]).nonzero()[0].tolist() == [200, 401]
    assert b.rewards[200, 0, 0] == 0.0 and b.rewards[401, 0, 0] == 0.0
    data = t.batch()
    assert data["valid"].sum() == 448
    assert float((data["valid"][0] == 0).sum()) == 2
    assert t.episodes and all(length == 200 for _, _, _, length in t.episodes)


@pytest.mark.parametrize("shape", [(3, 7), (3, 7, 4), (3, 7, 2, 3)])
def test_minibatches_match_a_loop_over_runs(shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    perm = torch.stack([torch.randperm(7, generator=gen) for _ in range(3)])
    mbs = minibatches(x, perm, 3)  # 7 samples in minibatches of 3: two, the seventh sample dropped
    assert mbs.shape == (2, 3, 3, *shape[2:])
    for j in range(2):
        assert mbs[j].is_contiguous()
        assert torch.equal(mbs[j], torch.stack([x[r, perm[r, 3 * j:3 * j + 3]] for r in range(3)]))


def test_status_records_the_cpu_time_and_a_resumed_older_checkpoint_says_since_when(make_cfg, tmp_path, monkeypatch):
    """status.json's cpu_s is the process's CPU time over the run's iterations (each iteration's process_time
    difference, summed over resumes), beside wall_s; a checkpoint of a version that did not measure it resumes
    with the CPU time counted from its iteration on, and the status says from which."""
    import time as real_time

    clock = iter(0.25 * k for k in range(10**6))

    class Time:  # the trainer's clock: process_time advances 0.25 s per call, the rest is the real module
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def process_time():
            return next(clock)

    monkeypatch.setattr(train_mod, "time", Time())
    opts = ["env=cartpole", *FAST]  # 4 iterations of 128 steps
    train_from_config(make_cfg(*opts, f"run_root={tmp_path}/a"))
    (status,) = [json.loads(p.read_text()) for p in (tmp_path / "a").rglob("status.json")]
    assert status["cpu_s"] == 4 * 0.25 and "cpu_s_since_iteration" not in status and status["wall_s"] > 0

    train_from_config(make_cfg(*opts[:-2], "total_timesteps=256", "checkpoint_every=2", f"run_root={tmp_path}/b"))
    (ckpt,) = (tmp_path / "b").rglob(CHECKPOINT)
    state = torch.load(ckpt, weights_only=False)
    del state["cpu_s"], state["cpu_since"]  # as ppo-bench 0.2.0 wrote it
    torch.save(state, ckpt)
    train_from_config(make_cfg(*opts, f"run_root={tmp_path}/b", "resume=true"))
    (status,) = [json.loads(p.read_text()) for p in (tmp_path / "b").rglob("status.json")]
    assert status["global_step"] == 512 and status["cpu_s"] == 2 * 0.25 and status["cpu_s_since_iteration"] == 2
