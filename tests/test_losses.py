"""The shared loss toolkit against hand values, brute-force loops and exact references.

The engine's own surrogate tests (test_objectives.py), GAE tests (test_gae.py) and GRPO's
(tests/llm/test_llm_grpo_math.py) also import these functions from ``ppo_bench.common.losses``.
"""

import numpy as np
import torch

from ppo_bench.rl.engine.distributions import Categorical
from ppo_bench.common.losses import (clipped_surrogate, clipped_value_loss, equal_reward_groups, gae, group_advantages,
                              kl_k1, kl_k3, masked_mean, masked_standardize)


def test_group_of_equal_rewards_gets_exactly_zero_even_when_its_float_mean_is_not_the_reward():
    # 1.2 and 0.2 are not exact in float32: mean([1.2]*8) − 1.2 = ±1e-7, which a std of ~1e-7 blew up
    rewards = torch.tensor([1.2] * 8 + [0.2] * 8)
    assert (rewards.view(2, 8).mean(1) - rewards.view(2, 8)[:, 0]).abs().max() > 0  # the trap is real
    for scale in ("group", "batch", "none"):
        assert torch.equal(group_advantages(rewards, 8, scale), torch.zeros(16)), scale
    assert torch.equal(group_advantages(torch.full((8,), 1.2), 8), torch.zeros(8))
    assert equal_reward_groups(rewards, 8).tolist() == [True, True]


def test_equal_reward_groups_marks_exactly_the_groups_with_zero_advantages():
    rewards = torch.tensor([1.2, 1.2, 1.2, 0.1, 0.1, 0.3, 0.7, 0.7, 0.7])
    flags = equal_reward_groups(rewards, 3)
    assert flags.tolist() == [True, False, True]
    adv = group_advantages(rewards, 3).view(3, 3)
    assert torch.equal((adv == 0).all(1), flags)


def test_kl_estimators_are_unbiased_for_the_exact_categorical_kl():
    g = torch.Generator().manual_seed(0)
    p_logits, q_logits = torch.randn(5, generator=g), torch.randn(5, generator=g)
    exact = Categorical(5).kl(p_logits, q_logits)
    x = torch.multinomial(torch.softmax(p_logits, -1), 400_000, replacement=True, generator=g)
    logp, logq = torch.log_softmax(p_logits, -1)[x], torch.log_softmax(q_logits, -1)[x]
    for k in (kl_k1(logp, logq), kl_k3(logp, logq)):
        assert abs(k.double().mean() - exact) < 0.01
    assert (kl_k3(logp, logq) >= 0).all()  # k3 is never negative, k1 is
    assert (kl_k1(logp, logq) < 0).any()


def test_clipped_surrogate_with_separate_lower_and_upper_eps_by_hand():
    ratio = torch.tensor([0.5, 0.5, 1.5, 1.5, 1.25])
    adv = torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0])
    out = clipped_surrogate(ratio, adv, 0.2, 0.28)
    # Â<0 clipped below at 0.8; Â>0 below keeps ρÂ; Â>0 above clipped at 1.28; Â<0 above keeps ρÂ; inside
    assert torch.allclose(out, torch.tensor([-0.8, 0.5, 1.28, -1.5, 1.25]))


def test_clipped_value_loss_by_hand():
    value = torch.tensor([1.0, 1.0, 0.0, 3.0], requires_grad=True)
    old = torch.tensor([0.0, 0.0, 0.0, 2.0])
    target = torch.tensor([2.0, -1.0, 1.0, 0.0])
    loss = clipped_value_loss(value, target, old, clip=0.2)
    # 1: (1−2)²=1 vs clipped 0.2: (0.2−2)²=3.24 → 3.24, no gradient through the clipped branch
    # 2: (1+1)²=4 vs (0.2+1)²=1.44 → 4 (unclipped, gradient 2·2=4)
    # 3: inside the clip range → (0−1)² = 1, gradient −2
    # 4: (3−0)²=9 vs (2.2−0)²=4.84 → 9, gradient 6
    assert torch.allclose(loss, torch.tensor([3.24, 4.0, 1.0, 9.0]))
    loss.sum().backward()
    assert torch.allclose(value.grad, torch.tensor([0.0, 4.0, -2.0, 6.0]))
    assert torch.equal(clipped_value_loss(value, target, old, None), (value - target).pow(2))


def test_masked_mean_and_standardize_per_row_and_over_everything():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 6.0, -50.0, 8.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    assert torch.allclose(masked_mean(x, m, dim=1), torch.tensor([2.0, 6.0]))
    assert torch.allclose(masked_mean(x, m), torch.tensor(24.0 / 6))
    assert masked_mean(x, torch.zeros_like(m)) == 0
    rows = masked_standardize(x, m, eps=0.0)
    assert torch.allclose(rows[0, :3], torch.tensor([-1.0, 0.0, 1.0]))
    kept = x[m.bool()]
    flat = masked_standardize(x, m, eps=0.0, dim=None)
    assert torch.allclose(flat[m.bool()], (kept - kept.mean()) / kept.std())


def test_gae_is_one_function_for_numpy_and_torch():
    rng = np.random.default_rng(0)
    T = 30
    r, v = rng.normal(size=(T, 3)), rng.normal(size=(T + 1, 3))
    te, tr, va = rng.random((T, 3)) < 0.1, rng.random((T, 3)) < 0.1, rng.random((T, 3)) < 0.9
    a_np, ret_np = gae(r, v, te, tr, va, 0.99, 0.95)
    a_t, ret_t = gae(*(torch.from_numpy(x) for x in (r, v, te, tr, va)), 0.99, 0.95)
    assert np.array_equal(a_np, a_t.numpy()) and np.array_equal(ret_np, ret_t.numpy())
    last = (r[-1] + 0.99 * v[-1] * (1.0 - te[-1]) - v[-2]) * va[-1]  # the final step has no Â_{t+1}
    assert np.allclose(a_np[-1], last, rtol=0, atol=1e-15)
