"""Extending ppo-bench from a package of one's own, outside the repository and without editing it: an RL
algorithm, a surrogate objective and a Gymnasium environment, each one module plus (for the first two) one YAML
file, brought in by `extensions=[...]` and `hydra.searchpath`, the environment by Gymnasium's `module:id`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

ENVS = '''
import gymnasium as gym
import numpy as np


class TwoArmedBandit(gym.Env):
    """One step per episode; arm 1 pays 1, arm 0 pays 0. A policy that learns picks arm 1."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), float(action == 1), True, False, {}


gym.register("TwoArmedBandit-v0", entry_point=TwoArmedBandit)
'''

ALGO = '''
"""Plain policy gradient with SGD on the whole batch: one step per iteration along the gradient of
L^PG = E[log pi(a|s) A] (PPO paper eq. 2), the value function left as it starts."""
import torch

from ppo_bench.common.losses import masked_mean
from ppo_bench.rl.algorithms.policy_gradient import policy_gradient_objective
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm
from ppo_bench.rl.engine.updates import gradient_wrt


@register_algorithm("sgd_pg")
class SGDPolicyGradient(Algorithm):
    standardize_advantages = False

    @staticmethod
    def check(cfg):
        from ppo_bench.common.errors import ConfigError
        if not cfg.algo.lr > 0:
            raise ConfigError(f"algo.lr={cfg.algo.lr} must be > 0")

    def __init__(self, trainer):
        self.tr, self.model, self.dist = trainer, trainer.model, trainer.dist
        self.lr = float(trainer.cfg.algo.lr)

    def run_state(self, r):
        return {"hparams": {}}

    def load_run_state(self, r, st):
        pass

    def update(self, data):
        w = data["valid"]
        params, _, tape = self.model.forward_taped(data["obs"])

        def objective(p):
            pg = masked_mean(policy_gradient_objective(self.dist.log_prob(p, data["actions"]), data["adv"]), w, dim=1)
            return -pg.sum(), (pg,)

        g_params, (pg,) = gradient_wrt(objective, params)
        g = self.model.backward_taped(tape, g_params, torch.zeros_like(w))
        with torch.no_grad():
            self.model.flat -= self.lr * torch.where(self.tr.active.view(-1, 1), g, 0.0)
        return {"policy": -pg}

    def log_values(self, stats, r):
        return {"losses/policy": stats["policy"][r]}
'''

OBJECTIVE = '''
"""A clipped surrogate with its own lower and upper epsilon (DAPO, Yu et al. 2025, eq. 10)."""
from ppo_bench.common.losses import clipped_surrogate
from ppo_bench.rl.algorithms.ppo.objectives import in_open_unit_interval, objective


@objective("clip_asym", eps_low=in_open_unit_interval, eps_high=in_open_unit_interval)
def asymmetric_clip(ratio, adv, kl, eps_low, eps_high):
    return clipped_surrogate(ratio, adv, eps_low, eps_high)
'''


@pytest.fixture(scope="module")
def my_pkg(tmp_path_factory) -> Path:
    """A package of one's own in a folder outside the repository: code, and a conf/ tree of its YAML files."""
    root = tmp_path_factory.mktemp("elsewhere")
    pkg = root / "my_pkg"
    (pkg / "conf" / "algo").mkdir(parents=True)
    (pkg / "conf" / "objective").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "envs.py").write_text(ENVS)
    (pkg / "algos.py").write_text(ALGO)
    (pkg / "objectives.py").write_text(OBJECTIVE)
    (pkg / "conf" / "algo" / "sgd_pg.yaml").write_text("name: sgd_pg\nnum_steps: 64\ngamma: 0.99\ngae_lambda: 0.95\n"
                                                       "lr: 0.5\n")
    (pkg / "conf" / "objective" / "clip_asym.yaml").write_text("name: clip_asym\neps_low: 0.2\neps_high: 0.28\n")
    return root


def ppo_bench(my_pkg: Path, cwd: Path, *overrides: str, module: str = "ppo_bench") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(my_pkg)}
    return subprocess.run([sys.executable, "-m", module, *overrides], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def returns(run: Path):
    from ppo_bench.analysis.runs import read_episodes

    return read_episodes(run)[1]


def test_an_algorithm_and_an_environment_of_ones_own_train_and_learn(my_pkg, tmp_path):
    r = ppo_bench(my_pkg, tmp_path, "extensions=[my_pkg.algos]", f"hydra.searchpath=[file://{my_pkg}/my_pkg/conf]",
                  "algo=sgd_pg", "env.id=my_pkg.envs:TwoArmedBandit-v0", "total_timesteps=1280",
                  "model.arch=separate", f"run_root={tmp_path}/runs", "progress=never")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "TwoArmedBandit-v0" / "sgd_pg" / "seed0"
    assert (run / "checkpoint.pt").exists() and "finished" in (run / "status.json").read_text()
    ret = returns(run)
    # one-step episodes: Gymnasium's next-step autoreset spends every other step on a reset
    assert len(ret) == 640 and ret[-32:].mean() > ret[:32].mean() + 0.2  # it learnt to pick arm 1
    # the same run resumes as any other: finished, skipped
    again = ppo_bench(my_pkg, tmp_path, "extensions=[my_pkg.algos]", f"hydra.searchpath=[file://{my_pkg}/my_pkg/conf]",
                      "algo=sgd_pg", "env.id=my_pkg.envs:TwoArmedBandit-v0", "total_timesteps=1280",
                      f"run_root={tmp_path}/runs", "progress=never", "resume=true")
    assert again.returncode == 0 and "finished (skipped)" in again.stdout, again.stderr


def test_an_objective_of_ones_own_trains_with_ppo_and_is_evaluated(my_pkg, tmp_path):
    r = ppo_bench(my_pkg, tmp_path, "extensions=[my_pkg.objectives]",
                  f"hydra.searchpath=[file://{my_pkg}/my_pkg/conf]", "objective=clip_asym",
                  "env.id=my_pkg.envs:TwoArmedBandit-v0", "algo.num_steps=64", "algo.minibatch_size=32",
                  "algo.epochs=4", "algo.lr=0.01", "total_timesteps=1280", f"run_root={tmp_path}/runs",
                  "progress=never", "population.objectives=[{name: clip_asym}, {name: clip_asym, eps_high: 0.4}]")
    assert r.returncode == 0, r.stderr
    for setting in ("clip_asym_eps_high0.28_eps_low0.2", "clip_asym_eps_high0.4_eps_low0.2"):
        run = tmp_path / "runs" / "TwoArmedBandit-v0" / setting / "seed0"
        ret = returns(run)
        assert ret[-32:].mean() > ret[:32].mean() + 0.2, setting
    ev = ppo_bench(my_pkg, tmp_path, str(tmp_path / "runs" / "TwoArmedBandit-v0" / setting / "seed0"),
                   "--episodes", "5", module="ppo_bench.rl.evaluate")
    assert ev.returncode == 0, ev.stderr


@pytest.mark.parametrize("overrides, message", [
    (["extensions=[no_such_pkg.algos]"], "extensions: no module named 'no_such_pkg.algos'"),
    (["env.id=no_such_pkg.envs:X-v0"], "env.id='no_such_pkg.envs:X-v0': no module named 'no_such_pkg.envs'"),
    (["env.id=my_pkg.envs:Nope-v0"], "env.id='my_pkg.envs:Nope-v0' is not a registered Gymnasium id"),
    (["algo.name=sgd_pg"], "algo.name='sgd_pg' is unknown; allowed: a2c"),  # its module was not named
])
def test_what_cannot_be_found_is_one_line(my_pkg, tmp_path, overrides, message):
    r = ppo_bench(my_pkg, tmp_path, *overrides, "total_timesteps=64", f"run_root={tmp_path}/runs")
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(err) == 1 and message in err[0], r.stderr
