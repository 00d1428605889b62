"""Per-run Adam against torch.optim.Adam run by run; per-run RMSProp against steps worked by hand; per-run statistics
against numpy on each run alone."""

import numpy as np
import pytest
import torch

from ppo_bench.rl.engine.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd
from ppo_bench.rl.engine.optim import PerRunAdam, PerRunRMSprop


def test_lockstep_adam_matches_torch_adam():
    torch.manual_seed(1)
    init = torch.randn(4, 9)
    flat = torch.nn.Parameter(init.clone())
    ref = torch.nn.Parameter(init.clone())
    opt, ref_opt = PerRunAdam(flat, eps=1e-8), torch.optim.Adam([ref], lr=3e-4)
    for step in range(5):
        grads = torch.randn(4, 9)
        flat.grad, ref.grad = grads.clone(), grads.clone()
        opt.step(torch.full((4,), 3e-4), torch.ones(4, dtype=torch.bool))
        ref_opt.step()
    torch.testing.assert_close(flat.detach(), ref.detach(), rtol=1e-6, atol=1e-7)


def test_per_run_adam_matches_torch_adam_for_each_run():
    torch.manual_seed(0)
    R, P = 3, 7
    init = torch.randn(R, P)
    flat = torch.nn.Parameter(init.clone())
    opt = PerRunAdam(flat, eps=1e-5)
    refs = [torch.nn.Parameter(init[r].clone()) for r in range(R)]
    lrs = [1e-2, 3e-3, 1e-3]
    ref_opts = [torch.optim.Adam([p], lr=lr, eps=1e-5) for p, lr in zip(refs, lrs)]
    for step in range(5):
        grads = torch.randn(R, P)
        flat.grad = grads.clone()
        opt.step(torch.tensor(lrs), torch.ones(R, dtype=torch.bool))
        for r in range(R):
            refs[r].grad = grads[r].clone()
            ref_opts[r].step()
    for r in range(R):
        torch.testing.assert_close(flat[r].detach(), refs[r].detach(), rtol=1e-6, atol=1e-7)


def test_inactive_run_is_untouched_even_with_nan_gradient_and_clipping_is_per_run():
    flat = torch.nn.Parameter(torch.ones(2, 4))
    opt = PerRunAdam(flat)
    flat.grad = torch.tensor([[3.0, 4.0, 0.0, 0.0], [float("nan")] * 4])
    norms = opt.step(torch.tensor([0.1, 0.1]), torch.tensor([True, False]), max_grad_norm=1.0)
    assert norms is not None
    assert torch.equal(flat[1].detach(), torch.ones(4))
    assert torch.equal(opt.m[1], torch.zeros(4)) and int(opt.steps[1]) == 0
    assert float(norms[0]) == 5.0
    torch.testing.assert_close(opt.m[0], 0.1 * torch.tensor([0.6, 0.8, 0.0, 0.0]))  # clipped to norm 1


def test_rmsprop_two_steps_by_hand():
    """TensorFlow 1's RMSProp as baselines a2c/acer ran it: s₀ = 1, s ← α s + (1 − α) g², θ ← θ − lr g / √(s + ε).
    α = ½, ε = 3 keep every number exact. Run 0 steps twice, run 1 then sits out (NaN gradient), run 2 sits out
    then takes its first step."""
    flat = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    opt = PerRunRMSprop(flat, alpha=0.5, eps=3.0)
    lr, nan = torch.tensor([0.5, 0.25, 1.0]), float("nan")
    flat.grad = torch.tensor([[1.0, -1.0], [1.0, -1.0], [nan, nan]])
    opt.step(lr, torch.tensor([True, True, False]))
    # runs 0, 1: s = ½·1 + ½·1 = 1, √(1 + 3) = 2, θ −= lr·(±1)/2; run 2 untouched
    assert torch.equal(opt.square_avg, torch.ones(3, 2))
    assert torch.equal(flat.detach(), torch.tensor([[0.75, 2.25], [2.875, 4.125], [5.0, 6.0]]))
    flat.grad = torch.tensor([[-5.0, 5.0], [nan, nan], [1.0, -5.0]])
    opt.step(lr, torch.tensor([True, False, True]))
    # run 0: s = ½·1 + ½·25 = 13, √16 = 4, θ −= ½·(∓5)/4; run 2: s = (1, 13), θ −= (1·1/2, 1·(−5)/4)
    assert torch.equal(opt.square_avg, torch.tensor([[13.0, 13.0], [1.0, 1.0], [1.0, 13.0]]))
    assert torch.equal(flat.detach(), torch.tensor([[1.375, 1.625], [2.875, 4.125], [4.5, 7.25]]))


@pytest.mark.parametrize("n_envs", [1, 4])  # N = 1 takes its own path (no NumPy mean/var)
def test_running_mean_std_keeps_runs_apart(n_envs):
    rng = np.random.default_rng(0)
    data = [rng.normal(loc=r * 10, scale=r + 1, size=(50, n_envs, 3)) for r in range(2)]  # (steps, N, dim)
    rms = RunningMeanStd(2, (3,), epsilon=0.0)
    for t in range(50):
        rms.update(np.stack([d[t] for d in data]))
    for r in range(2):
        flat = data[r].reshape(-1, 3)
        np.testing.assert_allclose(rms.mean[r], flat.mean(0), rtol=1e-10)
        np.testing.assert_allclose(rms.var[r], flat.var(0), rtol=1e-10)


def test_running_mean_std_one_sample_path_is_the_general_formula_bit_for_bit():
    """N = 1's fewer-op path gives exactly the numbers of Chan et al.'s update with NumPy's mean and var."""
    rng = np.random.default_rng(1)
    rms = RunningMeanStd(3, (4,))
    mean, var, count = np.zeros((3, 4)), np.ones((3, 4)), np.full(3, 1e-4)
    for t in range(200):
        x = rng.normal(loc=5.0, scale=3.0, size=(3, 1, 4))
        active = np.array([True, t % 3 > 0, True])
        rms.update(x, active)
        c = count[:, None]
        tot = c + 1
        delta = x.mean(1) - mean
        new_mean = mean + delta * 1 / tot
        new_var = (var * c + x.var(1) * 1 + delta * delta * c * 1 / tot) / tot
        mean, var = np.where(active[:, None], new_mean, mean), np.where(active[:, None], new_var, var)
        count = np.where(active, count + 1, count)
        assert np.array_equal(rms.mean, mean) and np.array_equal(rms.var, var) and np.array_equal(rms.count, count)


def test_observation_normalizer_clips_and_reward_scaler_resets_at_episode_end():
    norm = ObservationNormalizer(1, 1, clip=5.0)
    for v in (0.0, 1.0, 0.0, 1.0):
        norm(np.array([[[v]]]))
    assert abs(norm(np.array([[[1.0]]]), update=False).item() - 1.0) < 1e-3
    assert norm(np.array([[[1000.0]]]), update=False).item() == 5.0
    sc = RewardScaler(1, 1, gamma=0.5, clip=10.0)
    sc(np.array([[1.0]]), np.array([[False]]), np.array([[True]]))
    assert float(sc.returns[0, 0]) == 1.0
    sc(np.array([[1.0]]), np.array([[True]]), np.array([[True]]))
    assert float(sc.returns[0, 0]) == 0.0  # 1 then 1.5, reset after the episode ended
