"""The GRPO equations against hand computations (issue 5, "what it must show" 1)."""

import math

import pytest
import torch

from ppo_bench.llm.algorithms.grpo.loss import grpo_loss, normalise_tokens
from ppo_bench.common.losses import clipped_surrogate, group_advantages, kl_k3, policy_ratio


def test_group_advantages_hand_values():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(r, group_size=4, scale="group", eps=0.0)
    s = math.sqrt(4 * 0.25 / 3)  # sample std of [1, 0, 0, 1]
    assert torch.allclose(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / s)
    assert torch.equal(adv[4:], torch.zeros(4))  # zero std: no signal, and no division by zero


def test_group_advantages_zero_std_with_eps_is_zero_not_nan():
    adv = group_advantages(torch.tensor([3.0, 3.0, 3.0]), group_size=3, eps=1e-4)
    assert torch.equal(adv, torch.zeros(3))


def test_group_advantages_batch_and_none_scaling():
    r = torch.tensor([1.0, 0.0, 3.0, 1.0])
    centred = torch.tensor([0.5, -0.5, 1.0, -1.0])
    assert torch.allclose(group_advantages(r, 2, scale="none"), centred)
    assert torch.allclose(group_advantages(r, 2, scale="batch", eps=0.0), centred / r.std())
    with pytest.raises(ValueError):
        group_advantages(r, 2, scale="rank")


def test_k3_is_zero_for_identical_policies_and_nonnegative_otherwise():
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(64, 10, generator=g), -1)
    assert torch.allclose(kl_k3(logp, logp), torch.zeros_like(logp))
    ref = torch.log_softmax(torch.randn(64, 10, generator=g), -1)
    kl = kl_k3(logp, ref)
    assert (kl >= 0).all() and kl.sum() > 0
    # hand value: π_θ = 0.5, π_ref = 0.25 → 0.5 − log 0.5 − 1
    assert torch.allclose(kl_k3(torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25))), torch.tensor(0.5 + math.log(2) - 1))


def _grad_of_objective(ratio_value: float, adv_value: float, eps=0.2) -> float:
    logp = torch.tensor(math.log(ratio_value), requires_grad=True)
    obj = clipped_surrogate(policy_ratio(logp, torch.tensor(0.0)), torch.tensor(adv_value), eps, eps)
    obj.backward()
    return logp.grad.item()


def test_clipped_objective_gradient_vanishes_only_on_the_clipped_side():
    # Â > 0: clipped above 1+ε (no gradient), not below 1−ε (gradient ρ·Â)
    assert _grad_of_objective(1.5, 1.0) == 0.0
    assert _grad_of_objective(0.5, 1.0) == pytest.approx(0.5)
    # Â < 0: clipped below 1−ε, not above 1+ε
    assert _grad_of_objective(0.5, -1.0) == 0.0
    assert _grad_of_objective(1.5, -1.0) == pytest.approx(-1.5)
    # inside the trust region: ∇ρÂ = ρÂ ∇log π
    assert _grad_of_objective(1.1, 2.0) == pytest.approx(2.2)


def test_upper_epsilon_is_separate():
    ratio = torch.tensor([1.25])
    assert clipped_surrogate(ratio, torch.tensor([1.0]), 0.2, 0.28).item() == pytest.approx(1.25)
    assert clipped_surrogate(ratio, torch.tensor([1.0]), 0.2, 0.2).item() == pytest.approx(1.2)


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 9.0, 9.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("grpo", ((1 + 2 + 3) / 3 + 4 / 1 + 4 / 4) / 3),  # mean over sequences of per-sequence means
        ("dapo", (1 + 2 + 3 + 4 + 4) / 8),  # mean over all 8 tokens
        ("dr_grpo", (1 + 2 + 3 + 4 + 4) / (3 * 4)),  # sum / (G · L_max)
    ],
)
def test_loss_normalisations_hand_values(loss_type, expected):
    assert normalise_tokens(PER_TOKEN, MASK, loss_type, n_seqs=3, n_tokens=8, max_len=4).item() == pytest.approx(expected)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_micro_batches_add_up_to_the_batch_loss(loss_type):
    whole = normalise_tokens(PER_TOKEN, MASK, loss_type, 3, 8, 4)
    parts = sum(normalise_tokens(PER_TOKEN[i : i + 1], MASK[i : i + 1], loss_type, 3, 8, 4) for i in range(3))
    assert parts.item() == pytest.approx(whole.item())


def test_grpo_loss_on_policy_is_the_policy_gradient_and_kl_enters_with_beta():
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]])).requires_grad_(True)
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -1.0])
    kw = dict(eps_low=0.2, eps_high=0.2, loss_type="grpo", n_seqs=2, n_tokens=3, max_len=2)
    loss, stats = grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0, **kw)
    loss.backward()
    # −(1/G) Σ_i Â_i (1/|o_i|) Σ_t ∇log π: d/dlogp = −Â_i / (G |o_i|) on unmasked tokens
    assert torch.allclose(logp.grad, torch.tensor([[-0.25, -0.25], [0.5, 0.0]]))
    assert loss.item() == pytest.approx(-(1.0 * 1 + (-1.0) * 1) / 2)
    assert stats["clip_low"] == 0 and stats["clip_high"] == 0 and stats["tokens"] == 3
    ref = torch.log(torch.tensor([[0.25, 0.25], [0.5, 0.5]]))
    loss_kl, stats_kl = grpo_loss(logp.detach(), logp.detach(), ref, adv, mask, beta=0.1, **kw)
    k = 0.5 + math.log(2) - 1  # k3 of the first token; the others are 0
    assert loss_kl.item() == pytest.approx(loss.item() + 0.1 * (k / 2) / 2, rel=1e-5)
    assert stats_kl["kl"].item() == pytest.approx(k, rel=1e-5)


def test_clip_fractions_count_only_clipped_tokens():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))
    _, st = grpo_loss(logp, torch.zeros(1, 3), None, torch.tensor([1.0]), torch.ones(1, 3, dtype=torch.long),
                      eps_low=0.2, eps_high=0.2, beta=0.0, loss_type="dapo", n_seqs=1, n_tokens=3, max_len=3)
    assert st["clip_high"].item() == 1 and st["clip_low"].item() == 0  # ρ=0.5 with Â>0 is not clipped


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_a_huge_log_ratio_on_padding_leaves_the_loss_finite_and_as_without_padding(loss_type):
    # tokens after the first EOS are padding: a log-ratio of 1e4 there (exp: inf) to π_θold and to π_ref, masked before
    # it is exponentiated, changes neither the loss (clipped surrogate and k3 KL) nor its gradient
    g = torch.Generator().manual_seed(1)
    lengths = [2, 4, 1]
    mask = (torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]).float()
    old = -torch.rand(3, 4, generator=g)
    ref = -torch.rand(3, 4, generator=g)
    logp = (old + 0.3 * torch.randn(3, 4, generator=g)).masked_fill(mask == 0, 1.0e4).requires_grad_()
    adv = torch.tensor([1.0, -0.5, 2.0])  # one per completion: not 0 on a row's padding
    kw = dict(eps_low=0.2, eps_high=0.28, beta=0.04, loss_type=loss_type, n_seqs=3, n_tokens=int(mask.sum()), max_len=4)
    loss, st = grpo_loss(logp, old, ref, adv, mask, **kw)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in st.values())
    assert torch.isfinite(logp.grad).all() and torch.all(logp.grad[mask == 0] == 0)
    unpadded = 0.0
    for b, n in enumerate(lengths):
        lp = logp.detach()[b:b + 1, :n].clone().requires_grad_()
        row, _ = grpo_loss(lp, old[b:b + 1, :n], ref[b:b + 1, :n], adv[b:b + 1], torch.ones(1, n), **kw)
        row.backward()
        torch.testing.assert_close(logp.grad[b, :n], lp.grad[0])
        unpadded = unpadded + row
    torch.testing.assert_close(loss, unpadded)
