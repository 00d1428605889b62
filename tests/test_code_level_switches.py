"""The code-level optimisations of Engstrom et al. 2020 as general switches of the engine, each against an
independent reference: two torch Adams for a value step size of its own, a hand norm for policy-only gradient
clipping, a brute-force running mean/std for per-reward normalisation, torch's xavier_uniform_ for the init,
the clipped value loss by hand for TRPO's value fit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml
import pytest
import torch

from ppo_bench.rl.engine.networks import ActorCritic
from ppo_bench.rl.engine.normalization import ObservationNormalizer, RewardScaler
from ppo_bench.rl.engine.optim import PerRunAdam


def test_a_value_step_size_of_its_own_is_two_torch_adams():
    torch.manual_seed(0)
    P, vc = 12, slice(4, 9)  # policy columns 0..3 and 9..11, value columns 4..8
    x0 = torch.randn(2, P)
    flat = torch.nn.Parameter(x0.clone())
    ours = PerRunAdam(flat, eps=1e-5, value_columns=vc)
    refs = []
    for r in range(2):
        p_pol = torch.nn.Parameter(torch.cat([x0[r, :4], x0[r, 9:]]))
        p_val = torch.nn.Parameter(x0[r, vc].clone())
        refs.append((p_pol, p_val, torch.optim.Adam([{"params": [p_pol], "lr": [3e-4, 1e-3][r]},
                                                     {"params": [p_val], "lr": [2e-3, 5e-4][r]}], eps=1e-5)))
    for _ in range(5):
        g = torch.randn(2, P)
        flat.grad = g.clone()
        ours.step(torch.tensor([3e-4, 1e-3]), torch.tensor([True, True]), value_lr=torch.tensor([2e-3, 5e-4]))
        for r, (p_pol, p_val, opt) in enumerate(refs):
            p_pol.grad, p_val.grad = torch.cat([g[r, :4], g[r, 9:]]), g[r, vc].clone()
            opt.step()
    for r, (p_pol, p_val, _) in enumerate(refs):
        torch.testing.assert_close(torch.cat([flat[r, :4], flat[r, 9:]]).detach(), p_pol.detach(), rtol=0, atol=1e-7)
        torch.testing.assert_close(flat[r, vc].detach(), p_val.detach(), rtol=0, atol=1e-7)


def test_policy_only_clipping_leaves_the_value_gradient_alone():
    P, vc = 10, slice(3, 7)
    flat = torch.nn.Parameter(torch.zeros(1, P))
    g = torch.arange(1.0, P + 1).view(1, P)
    policy = torch.cat([g[0, :3], g[0, 7:]])
    captured = {}

    class Capture(PerRunAdam):
        def _fused(self, rates, steps, params, grads, ms, vs, active):
            captured.setdefault("g", []).append(torch.cat(grads))

    opt = Capture(flat, value_columns=vc)
    flat.grad = g.clone()
    norms = opt.step(torch.tensor([1e-3]), torch.tensor([True]), max_grad_norm=1.0, clip_policy_only=True)
    assert norms.item() == pytest.approx(policy.norm().item())  # the norm of the policy's columns only
    seen = captured["g"][0]
    torch.testing.assert_close(torch.cat([seen[:3], seen[7:]]), policy / (policy.norm() + 1e-6))
    torch.testing.assert_close(seen[3:7], g[0, vc])  # the value's, untouched


def test_reward_normalisation_by_the_rewards_own_statistics_matches_a_brute_force_loop():
    rng = np.random.default_rng(1)
    T, R = 50, 3
    rewards, valid = rng.normal(2.0, 3.0, (T, R, 1)), rng.random((T, R, 1)) > 0.1
    scaler = RewardScaler(R, 1, 0.99, clip=4.0, by="reward")
    for t in range(T):
        out = scaler(rewards[t], np.zeros((R, 1), bool), valid[t])
        for r in range(R):  # every valid reward so far, the running statistics' prior of one sample at 0 ± 1
            seen = rewards[: t + 1, r, 0][valid[: t + 1, r, 0]]
            n0 = 1e-4
            n = n0 + len(seen)
            mean = seen.sum() / n
            var = (n0 * (1 + mean ** 2) + ((seen - mean) ** 2).sum()) / n
            expect = np.clip((rewards[t, r, 0] - mean) / math.sqrt(var + 1e-8) + mean, -4, 4)
            assert out[r, 0] == pytest.approx(expect, rel=1e-9, abs=1e-9)


def test_observation_clipping_off():
    off, on = ObservationNormalizer(1, 2, clip=None), ObservationNormalizer(1, 2, clip=5.0)
    rng = np.random.default_rng(0)
    for _ in range(100):
        x = rng.normal(size=(1, 1, 2))
        off(x), on(x)
    far = np.array([[[40.0, -40.0]]])
    expect = (far - off.rms.mean[:, None]) / np.sqrt(off.rms.var[:, None] + 1e-8)
    np.testing.assert_allclose(off(far, update=False), expect, rtol=1e-6)  # beyond ±5, kept
    np.testing.assert_array_equal(on(far, update=False), np.clip(expect, -5, 5).astype(np.float32))


def test_xavier_init_is_glorots_uniform_on_every_layer_with_zero_biases():
    model = ActorCritic(2, 11, 3, True, [64, 64])
    model.init_run(0, seed=7, scheme="xavier")
    model.init_run(1, seed=7, scheme="orthogonal")
    for layers in (model.pi, model.vf):
        for w, b in layers:
            W, B = model.layout.view(model.flat, w)[0], model.layout.view(model.flat, b)[0]
            fan_in, fan_out = W.shape
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert W.abs().max() <= bound and W.abs().max() > 0.9 * bound and B.abs().max() == 0
            ref = torch.empty(fan_out, fan_in)
    gen = torch.Generator().manual_seed(7)
    torch.nn.init.xavier_uniform_(ref := torch.empty(64, 11), generator=gen)
    torch.testing.assert_close(model.layout.view(model.flat, model.pi[0][0])[0].detach(), ref.T)
    assert not torch.equal(model.flat[0], model.flat[1])


def test_value_fit_with_clipping_follows_the_clipped_loss(make_cfg):
    """TRPO's value fit with vf_clip: one Adam step on the clipped loss equals the step computed by hand."""
    from ppo_bench.rl.launch import population_specs
    from ppo_bench.rl.engine.trainer import PopulationTrainer

    cfg = make_cfg("env=pendulum", "algo=trpo", "algo.num_steps=64", "algo.vf_minibatch_size=64", "algo.vf_epochs=1",
                   "algo.vf_clip=0.01", "total_timesteps=64")
    t = PopulationTrainer(cfg, population_specs(cfg))
    t.collect()
    data = t.batch()
    fit = t.algo.value_fit
    before = t.model.flat.detach().clone()
    obs, ret, old, w = data["obs"], data["ret"], data["values"], data["valid"]
    flat = before.clone().requires_grad_(True)
    _, value = t.model(obs, flat=flat)
    err = (value - ret) ** 2
    clipped = (old + (value - old).clamp(-0.01, 0.01) - ret) ** 2
    loss = (torch.maximum(err, clipped) * w).sum() / w.sum()
    (g,) = torch.autograd.grad(loss, flat)
    ref = torch.optim.Adam([p := torch.nn.Parameter(before[0].clone())], lr=fit.lr, eps=fit.opt.eps)
    p.grad = g[0]
    ref.step()
    fit.fit(data)  # one epoch of one minibatch: the whole batch, in another order (a mean: order-free)
    torch.testing.assert_close(t.model.flat[0].detach(), p.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("agent", sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "conf" / "im").glob("*.yaml")))
def test_every_agent_of_the_experiment_composes_and_validates(agent, tmp_path):
    """Each of the 15 (task, agent) configs of experiment=implementation_matters is valid: 10 seeds, 488 × 2048."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ppo_bench.common.paths import CONF_DIR
    from ppo_bench.rl.launch import population_specs

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=implementation_matters", f"im={agent}", f"run_root={tmp_path}",
                                           "compile=false"])
    specs = population_specs(cfg)
    assert len(specs) == 10 and cfg.total_timesteps // cfg.algo.num_steps == 488
    assert cfg.algo.name == ("trpo" if "trpo" in agent else "ppo") and cfg.env.id.lower().startswith(agent.split("_")[0][:5])


def test_the_ablation_grid_composes_every_cell(tmp_path):
    """experiment=implementation_matters_ablation: 2 tasks × 2⁴ switches, each cell valid."""
    import itertools

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ppo_bench.common.paths import CONF_DIR
    from ppo_bench.rl.launch import population_specs

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        base = compose("config", overrides=["experiment=implementation_matters_ablation"], return_hydra_config=True)
        params = {k: str(v).split(",") for k, v in base.hydra.sweeper.params.items()}
        assert np.prod([len(v) for v in params.values()]) == 32
        for values in itertools.islice(itertools.product(*params.values()), 0, None, 5):  # a spread of cells
            overrides = [f"{k}={v}" for k, v in zip(params, values)]
            cfg = compose("config", overrides=["experiment=implementation_matters_ablation", *overrides,
                                               f"run_root={tmp_path}", "compile=false"])
            assert len(population_specs(cfg)) == 5
            for k, v in zip(params, values):
                if k != "im":
                    got = cfg[k.split(".")[0]][k.split(".")[1]]
                    want = yaml.safe_load(v.replace("e-", ".0e-") if "e-" in v and "." not in v else v)
                    assert got == want, (k, got, want)
