"""The defaults are the paper's (Table 3, §6.1) as written; the presets are the code of 2017 as released."""

import pytest
import torch

from ppo_bench.rl.engine.networks import ActorCritic

# Schulman et al. 2017, Table 3 (MuJoCo, 1M timesteps) and §6.1
PAPER = {
    "algo.num_steps": 2048,  # horizon T
    "algo.lr": 3e-4,  # Adam step size, constant: Table 3 anneals nothing for MuJoCo
    "algo.anneal_lr": False,
    "algo.epochs": 10,
    "algo.minibatch_size": 64,
    "algo.gamma": 0.99,
    "algo.gae_lambda": 0.95,
    "total_timesteps": 1_000_000,
    "algo.ent_coef": 0.0,  # §6.1: no entropy bonus, no parameter sharing
    "model.arch": "separate",
    "model.hidden": [64, 64],
    "model.activation": "tanh",
    "env.num_envs": 1,
    "objective.name": "clip",
    "objective.eps": 0.2,
}


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return list(cfg) if hasattr(cfg, "__len__") and not isinstance(cfg, str) else cfg


@pytest.mark.parametrize("key,value", PAPER.items(), ids=list(PAPER))
def test_every_paper_default_is_its_table3_value(make_cfg, key, value):
    assert _get(make_cfg(), key) == value


def test_preset_of_the_code_released_with_the_paper(make_cfg):
    cfg = make_cfg("preset=ppo1_2017_07")  # baselines da99706
    assert cfg.algo.clip_value == 0.2 and cfg.model.init == "normc"
    assert cfg.algo.anneal_lr is False and cfg.algo.adam_eps == 1e-8 and cfg.algo.lr == 3e-4


def test_preset_of_later_ppo1(make_cfg):
    cfg = make_cfg("preset=ppo1_2017_08")  # baselines d9f194f
    assert cfg.algo.anneal_lr is True and cfg.algo.adam_eps == 1e-5 and cfg.algo.clip_value is None
    assert cfg.model.init == "normc"


def test_command_line_overrides_a_preset(make_cfg):
    assert make_cfg("preset=ppo1_2017_07", "algo.clip_value=0.3").algo.clip_value == 0.3


def test_normc_init_gives_unit_rows_and_a_small_policy_head():
    net = ActorCritic(2, 5, 3, True, [8, 8], "tanh", "separate", 0.0)
    for r in range(2):
        net.init_run(r, seed=r, scheme="normc")
    for name in net.layout.slots:
        x = net.layout.view(net.flat, name)
        if x.dim() != 3 or x.shape[1] == 1:  # biases (and the log-std) start at 0
            assert torch.count_nonzero(x) == 0, name
            continue
        norms = x.norm(dim=1)  # (R, in, out): each unit's incoming weights
        head = 0.01 if x.shape[2] == 3 and name.startswith("pi") else 1.0
        assert torch.allclose(norms, torch.full_like(norms, head), rtol=1e-5), (name, norms)
    assert not torch.equal(net.layout.view(net.flat, net.pi[0][0])[0], net.layout.view(net.flat, net.pi[0][0])[1])
