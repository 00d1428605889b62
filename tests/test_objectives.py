"""Each surrogate's value and gradient against numbers computed by hand, and the registry contract."""

import pytest
import torch
import yaml

from ppo_bench.rl.engine.config import CONF_DIR
from ppo_bench.common.errors import ConfigError
from ppo_bench.rl.algorithms.ppo.objectives import OBJECTIVES, adapt_beta, get_objective

RATIO = torch.tensor([[0.5, 0.9, 1.0, 1.1, 1.5, 1.5]])
ADV = torch.tensor([[2.0, -1.0, 3.0, 1.0, 2.0, -2.0]])
KL = torch.tensor([[0.1, 0.0, 0.2, 0.3, 0.0, 0.4]])


def value_and_grad(name, **hp):
    ratio = RATIO.clone().requires_grad_(True)
    hp = {k: torch.tensor([[v]]) for k, v in hp.items()}
    out = get_objective(name)(ratio, ADV, KL, hp)
    out.sum().backward()
    return out.detach(), ratio.grad


def test_none_is_ratio_times_advantage():
    v, g = value_and_grad("none")
    assert torch.allclose(v, torch.tensor([[1.0, -0.9, 3.0, 1.1, 3.0, -3.0]]))
    assert torch.allclose(g, ADV)  # d(rA)/dr = A


def test_clip_by_hand():
    v, g = value_and_grad("clip", eps=0.2)
    # min(rA, clip(r,0.8,1.2)A): 0.5·2=1 vs 0.8·2=1.6 → 1 (unclipped side, grad A)
    # 0.9·−1=−0.9 (inside), 1·3, 1.1·1 (inside); 1.5·2=3 vs 1.2·2=2.4 → 2.4 (clipped, grad 0)
    # 1.5·−2=−3 vs 1.2·−2=−2.4 → −3 (pessimistic side keeps the gradient)
    assert torch.allclose(v, torch.tensor([[1.0, -0.9, 3.0, 1.1, 2.4, -3.0]]))
    assert torch.allclose(g, torch.tensor([[2.0, -1.0, 3.0, 1.0, 0.0, -2.0]]))


def test_clip_equals_cpi_while_ratios_inside_the_interval():
    ratio = torch.tensor([[0.85, 0.95, 1.0, 1.05, 1.19]])
    adv = torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0]])
    kl = torch.zeros_like(ratio)
    clip = get_objective("clip")(ratio, adv, kl, {"eps": torch.tensor([[0.2]])})
    cpi = get_objective("none")(ratio, adv, kl, {})
    assert torch.equal(clip, cpi)


def test_kl_penalty_by_hand():
    for name, hp in (("kl_fixed", {"beta": 3.0}), ("kl_adaptive", {"beta": 3.0, "kl_target": 0.01})):
        v, g = value_and_grad(name, **hp)
        assert torch.allclose(v, RATIO * ADV - 3.0 * KL)
        assert torch.allclose(g, ADV)


def test_hyperparameters_are_per_run():
    ratio = torch.full((2, 1), 1.5)
    adv = torch.ones(2, 1)
    out = get_objective("clip")(ratio, adv, torch.zeros(2, 1), {"eps": torch.tensor([[0.1], [0.3]])})
    assert torch.allclose(out, torch.tensor([[1.1], [1.3]]))


def test_adaptive_beta_rule_step_by_step():
    # paper §4: d < d_targ/1.5 → β/2, d > 1.5 d_targ → 2β, otherwise unchanged
    hp = {"beta": torch.tensor([[1.0]]), "kl_target": torch.tensor([[0.01]])}
    trace = []
    for d in (0.001, 0.001, 0.02, 0.01, 0.0150001, 0.0066, 0.0067, 0.05):
        hp = adapt_beta(hp, torch.tensor([[d]]))
        trace.append(float(hp["beta"]))
    assert trace == [0.5, 0.25, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0]


def test_every_objective_has_one_yaml_with_exactly_its_hyperparameters():
    files = {p.stem for p in (CONF_DIR / "objective").glob("*.yaml")}
    assert files == set(OBJECTIVES)
    for name, obj in OBJECTIVES.items():
        d = yaml.safe_load((CONF_DIR / "objective" / f"{name}.yaml").read_text())
        assert d["name"] == name
        assert set(d) - {"name"} == set(obj.hparams)


def test_unknown_objective_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: clip, kl_adaptive, kl_fixed, none"):
        get_objective("trpo")
