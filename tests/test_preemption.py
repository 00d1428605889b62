"""A launcher's own preemption signal (submitit's SIGUSR2: a time limit near, or a preemption) reaches its
handler only after every run is checkpointed at the iteration it was in, so the requeued job redoes no work.
The same path on a real Slurm: tests/cluster/."""

import signal

import pytest
import torch

from ppo_bench.common.preemption import Interrupted, StopRequest
from ppo_bench.rl.engine.trainer import CHECKPOINT, PopulationTrainer
from ppo_bench.rl.launch import train_from_config

# a short population: 8 iterations of 128 steps, no periodic checkpoint before the end
SHORT = ["env=cartpole", "algo.num_steps=128", "algo.minibatch_size=32", "algo.epochs=2", "total_timesteps=1024",
         "checkpoint_every=100", "population.seeds=[0,1]"]


class Requeued(SystemExit):
    """What submitit's handler ends with (``sys.exit(-1)`` after ``scontrol requeue``)."""


def test_sigusr2_goes_to_the_launchers_handler_after_every_run_is_checkpointed(make_cfg, tmp_path, monkeypatch):
    straight = train_from_config(make_cfg(*SHORT, f"run_root={tmp_path}/a"))
    seen = []

    def launcher_handler(signum, frame):  # stands in for submitit's checkpoint_and_try_requeue
        iterations = [torch.load(f"{tmp_path}/b/{name}/{CHECKPOINT}", weights_only=True)["iteration"]
                      for name in straight]
        seen.append((signal.Signals(signum), iterations))
        raise Requeued(-1)

    orig_log = PopulationTrainer.log

    def log_then_usr2(self, *args):
        orig_log(self, *args)
        if int(self.iteration[0]) == 3:
            signal.raise_signal(signal.SIGUSR2)  # mid-job; training goes on to the end of the iteration

    monkeypatch.setattr(PopulationTrainer, "log", log_then_usr2)
    previous = signal.signal(signal.SIGUSR2, launcher_handler)
    try:
        with pytest.raises(Requeued):
            train_from_config(make_cfg(*SHORT, f"run_root={tmp_path}/b", "resume=auto"))
        assert signal.getsignal(signal.SIGUSR2) is launcher_handler  # given back with the trainer
    finally:
        signal.signal(signal.SIGUSR2, previous)
    monkeypatch.setattr(PopulationTrainer, "log", orig_log)
    # once, and only when every run's checkpoint held iteration 3: nothing trained is lost
    assert seen == [(signal.SIGUSR2, [3, 3])]

    resumed = train_from_config(make_cfg(*SHORT, f"run_root={tmp_path}/b", "resume=auto"))
    for name in straight:
        assert resumed[name]["status"] == "finished"
        a = torch.load(f"{tmp_path}/a/{name}/{CHECKPOINT}", weights_only=True)
        b = torch.load(f"{tmp_path}/b/{name}/{CHECKPOINT}", weights_only=True)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert a["recent"] == b["recent"]  # the same episodes, so the same score


def test_sigusr_without_a_python_handler_is_left_alone():
    """Outside a launcher that asked for SIGUSR1/SIGUSR2, the trainer does not take them over."""
    assert not callable(signal.getsignal(signal.SIGUSR2))
    with StopRequest():
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL


def test_a_launcher_signal_after_sigterm_still_waits_for_the_checkpoints():
    """submitit's own preemption drill sends SIGTERM, then SIGUSR2: the second must not act at once."""
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: calls.append(s))
    try:
        with pytest.raises(Interrupted):
            with StopRequest() as stop:
                signal.raise_signal(signal.SIGTERM)
                signal.raise_signal(signal.SIGUSR2)
                assert calls == [] and stop.signal == signal.SIGTERM
                raise Interrupted("stopped", int(stop.signal))
        assert calls == [signal.SIGUSR2]  # after the block: the handler returned, Interrupted goes on
    finally:
        signal.signal(signal.SIGUSR2, previous)
