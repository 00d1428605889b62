"""Closed-form KLs against Monte-Carlo estimates; log-probs and entropies against torch.distributions."""

import torch
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal

from ppo_bench.rl.engine.distributions import Categorical, DiagGaussian


def test_gaussian_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    d = DiagGaussian(3)
    old = torch.tensor([[[0.3, -1.0, 0.5, -0.2, 0.1, 0.4]]])  # mean, log_std
    new = torch.tensor([[[0.0, -0.5, 0.9, 0.1, -0.3, 0.2]]])
    n = 400_000
    x = d.sample(old.expand(1, n, 6), torch.randn(1, n, 3, generator=g))
    mc = (d.log_prob(old.expand(1, n, 6), x) - d.log_prob(new.expand(1, n, 6), x)).mean()
    exact = d.kl(old, new)
    assert abs(float(exact) - float(mc)) < 0.01 * float(exact) + 2e-3
    assert float(d.kl(old, old)) == 0.0


def test_categorical_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    d = Categorical(4)
    old = torch.tensor([[[0.5, -1.0, 2.0, 0.0]]])
    new = torch.tensor([[[0.0, 0.3, 1.0, -0.5]]])
    n = 400_000
    x = d.sample(old.expand(1, n, 4), torch.rand(1, n, 1, generator=g))
    mc = (d.log_prob(old.expand(1, n, 4), x) - d.log_prob(new.expand(1, n, 4), x)).mean()
    assert abs(float(d.kl(old, new)) - float(mc)) < 0.01
    assert abs(float(d.kl(old, old))) < 1e-7


def test_log_prob_and_entropy_match_torch():
    d = DiagGaussian(2)
    p = torch.tensor([[[0.1, -0.2, 0.3, -0.7]]])
    a = torch.tensor([[[0.5, 0.25]]])
    ref = Normal(p[..., :2], p[..., 2:].exp())
    assert torch.allclose(d.log_prob(p, a), ref.log_prob(a).sum(-1))
    assert torch.allclose(d.entropy(p), ref.entropy().sum(-1))
    c = Categorical(3)
    logits = torch.tensor([[[0.2, -1.0, 0.7], [1.0, 1.0, -2.0]]])
    acts = torch.tensor([[2, 0]])
    ref = TorchCategorical(logits=logits)
    assert torch.allclose(c.log_prob(logits, acts), ref.log_prob(acts))
    assert torch.allclose(c.entropy(logits), ref.entropy())


def test_categorical_sampling_frequencies():
    c = Categorical(3)
    logits = torch.log(torch.tensor([[[0.2, 0.5, 0.3]]])).expand(1, 100_000, 3)
    u = torch.rand(1, 100_000, 1, generator=torch.Generator().manual_seed(2))
    freq = torch.bincount(c.sample(logits, u).flatten(), minlength=3).float() / 100_000
    assert torch.allclose(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.01)


def test_rollout_sampler_is_sample_with_log_prob_step_by_step():
    """A rollout's sampler (Gaussian: σ·noise and log-probs of all steps at once; NumPy in and out) gives
    bit for bit what sample_with_log_prob gives at each step."""
    g = torch.Generator().manual_seed(3)
    T, R, N = 7, 5, 2
    for d, P, noise in ((DiagGaussian(3), 6, torch.randn(T, R, N, 3, generator=g)),
                        (Categorical(4), 4, torch.rand(T, R, N, 1, generator=g))):
        params = torch.randn(T, R, N, P, generator=g)
        if P == 6:
            params[..., 3:] = params[0, :, :1, 3:]  # a state-independent log-std, fixed for the rollout
        sample = d.rollout_sampler(noise)
        for t in range(T):
            a, lp = sample(t, params[t].numpy())  # the acting network's NumPy arrays in and out
            a_ref, lp_ref = d.sample_with_log_prob(params[t], noise[t])
            assert torch.equal(torch.from_numpy(a), a_ref) and torch.equal(torch.from_numpy(lp), lp_ref)
