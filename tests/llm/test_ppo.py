"""PPO for language models: token-level GAE, the KL-shaped reward, the loss by hand; a tiny run that learns."""

import math

import pytest
import torch

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.algorithms.ppo import loss as ppo
from ppo_bench.llm.launch import validate
from ppo_bench.llm.launch import build_trainer, train_from_config

TINY = ["model=tiny", "algo=ppo", "task.n_eval=8", "eval.every=0", "eval.batch_size=8", "eval.max_new_tokens=4",
        "algo.max_completion_length=4", "algo.prompts_per_step=8", "algo.minibatch_size=4", "save_model=false",
        "torch_threads=1"]


def seed_notes_gae(values, rewards, start, gamma, lam):
    """trlx's get_advantages_and_returns, as the loop is written there (modeling_ppo.py)."""
    lastgaelam = 0
    advantages_reversed = []
    length = rewards.size()[-1]
    for t in reversed(range(start, length)):
        nextvalues = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = advantages + values[:, start:]
    return advantages.detach(), returns


def brute_force_gae(rewards, values, n, gamma, lam):
    """Â_t = Σ_k (γλ)^k δ_{t+k} over the n response tokens of one row, V after the last = 0."""
    adv = torch.zeros(n, dtype=torch.float64)
    for t in range(n):
        for k in range(n - t):
            i = t + k
            nxt = values[i + 1] if i + 1 < n else 0.0
            adv[t] += (gamma * lam) ** k * (rewards[i] + gamma * nxt - values[i])
    return adv


def random_rollout(B=5, L=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 3, 1, 5, 7])[:B]
    mask = (torch.arange(L)[None, :] < lengths[:, None]).double()
    return torch.randn(B, L, generator=g, dtype=torch.float64) * mask, torch.randn(B, L, generator=g, dtype=torch.float64), mask, lengths


def test_response_gae_matches_brute_force_and_gives_only_response_tokens_advantages():
    rewards, values, mask, lengths = random_rollout()
    for gamma, lam in ((1.0, 0.95), (0.9, 0.8)):
        adv, ret = ppo.response_gae(rewards, values, mask, gamma, lam)
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(adv[b, :n], brute_force_gae(rewards[b], values[b], n, gamma, lam))
            assert torch.all(adv[b, n:] == 0) and torch.all(ret[b, n:] == 0)
            torch.testing.assert_close(ret[b, :n], adv[b, :n] + values[b, :n])


def test_response_gae_is_the_seed_notes_loop_over_prompt_plus_response():
    # trlx's loop runs over full sequences from the first response position `start`, padding zeroed
    rewards, values, mask, lengths = random_rollout(seed=1)
    P = 4
    full_r = torch.cat([torch.randn(5, P, dtype=torch.float64), rewards], 1)
    full_v = torch.cat([torch.randn(5, P, dtype=torch.float64), values * mask], 1)
    ref_adv, ref_ret = seed_notes_gae(full_v, full_r, P, 1.0, 0.95)
    adv, ret = ppo.response_gae(rewards, values, mask, 1.0, 0.95)
    torch.testing.assert_close(adv, ref_adv * mask)
    torch.testing.assert_close(ret, ref_ret * mask)


def test_kl_shaped_reward_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -3.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.2, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, non_score = ppo.kl_shaped_rewards(logp, ref, torch.tensor([2.0, -1.0]), mask, kl_coef=0.1)
    # −β(log π − log π_ref): row 0: −0.1·0.5, −0.1·(−1), 0, then +2 at the last token; row 1 ends at token 1
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.1, 2.0], [-0.01, 0.2 - 1.0, 0.0]]))
    torch.testing.assert_close(non_score, torch.tensor([[-0.05, 0.1, 0.0], [-0.01, 0.2, 0.0]]))


def test_adaptive_kl_controller_by_hand():
    # Ziegler et al. 2019: e = clip(KL/target − 1, ±0.2), β ← β(1 + e·n/horizon)
    assert ppo.adaptive_kl_coef(0.1, 12.0, 6.0, 100, 10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    assert ppo.adaptive_kl_coef(0.1, 3.0, 6.0, 100, 10) == pytest.approx(0.1 * (1 - 0.2 * 0.1))
    assert ppo.adaptive_kl_coef(0.1, 6.6, 6.0, 100, 10) == pytest.approx(0.1 * (1 + 0.1 * 0.1))


def test_ppo_token_loss_by_hand_and_its_gradients():
    logp = torch.tensor([[math.log(1.5), math.log(0.5), 0.0]], requires_grad=True)
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -1.0, 5.0]])
    values = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)
    old_values = torch.zeros(1, 3)
    returns = torch.tensor([[2.0, 0.5, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, st = ppo.ppo_token_loss(logp, old, values, old_values, returns, adv, mask, eps_low=0.2, eps_high=0.2,
                                  value_clip=0.2, vf_coef=0.5, n_tokens=2.0)
    # policy: token 0 ρ=1.5, Â=1 → clipped 1.2; token 1 ρ=0.5, Â=−1 → clipped −0.8; token 2 masked
    # value: token 0 max((1−2)², (0.2−2)²)=3.24; token 1 max(0.25, 0.25)=0.25; ½ each
    expected = -(1.2 - 0.8) / 2 + 0.5 * 0.5 * (3.24 + 0.25) / 2
    assert loss.item() == pytest.approx(expected)
    assert st["clipfrac"].item() == 2 and st["value_clipfrac"].item() == 1
    loss.backward()
    assert torch.all(logp.grad == 0)  # both tokens on the clipped side
    # token 0's value is clipped (no gradient); token 1: ½·2·(0 − 0.5)·vf_coef / n_tokens
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, 0.5 * (0.0 - 0.5) * 0.5, 0.0]]))


def digit_fraction(prompt, completion, **_):
    return sum(ch.isdigit() for ch in completion) / max(len(completion), 1)


def test_tiny_ppo_run_raises_a_trivial_reward_and_logs_trl_names(llm_cfg):
    run = build_trainer(llm_cfg(*TINY, "algo.steps=8", "algo.ppo_epochs=2", "algo.lr=3e-3", "eval.before=false",
                                "checkpoint_every=100", "algo.adaptive_kl=true", "algo.kl_horizon=100"))
    assert run.algorithm.ref is not None and run.algorithm.value_head.weight.shape[1] == run.model.config.hidden_size
    run.algorithm.reward_fns = {"correct": digit_fraction}
    summary = run.train()
    scores = [h["objective/scores"] for h in run.history]
    assert sum(scores[-3:]) / 3 > sum(scores[:3]) / 3 + 0.1, scores
    assert summary["updates"] == 8 and all(h["stats/optimizer_steps"] == 2 * 2 for h in run.history)
    assert run.history[0]["objective/kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert run.history[-1]["objective/kl"] > 0
    assert summary["kl_coef_final"] != 0.05  # the adaptive controller moved β
    for key in ("objective/rlhf_reward", "objective/non_score_reward", "policy/approxkl_avg", "policy/clipfrac_avg",
                "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg", "policy/entropy_avg"):
        assert key in run.history[-1], key


def test_a_killed_ppo_run_resumes_exactly(llm_cfg):
    args = [*TINY, "algo.steps=3", "algo.ppo_epochs=1", "algo.lr=1e-3", "eval.before=false", "algo.adaptive_kl=true",
            "algo.kl_horizon=10"]
    straight = build_trainer(llm_cfg(*args, "run_name=a"))
    straight.train()
    first = build_trainer(llm_cfg(*args, "run_name=b", "checkpoint_every=1"))
    first.a.steps = 1
    first.train()
    (first.run_dir / "status.json").unlink()
    second = build_trainer(llm_cfg(*args, "run_name=b"))
    second.train()
    assert [h["objective/kl"] for h in second.history] == [h["objective/kl"] for h in straight.history]
    assert second.algorithm.kl_coef == straight.algorithm.kl_coef
    for p, q in zip([*straight.model.parameters(), *straight.algorithm.value_head.parameters()],
                    [*second.model.parameters(), *second.algorithm.value_head.parameters()]):
        assert torch.equal(p, q)
    # another setting on the same folder is refused, naming the key and both values
    with pytest.raises(ConfigError, match=r"run .*/b was trained with other settings: algo.temperature: 1.0 \(the run\) vs 1.5 \(now\); "):
        train_from_config(llm_cfg(*args, "run_name=b", "algo.temperature=1.5"))


@pytest.mark.parametrize("override, message", [
    ("algo.minibatch_size=9", "algo.minibatch_size=9 must be <= algo.prompts_per_step=8"),
    ("algo.lam=1.5", r"algo.lam=1.5 must lie in \[0, 1\]"),
    ("algo.value_clip=0", "algo.value_clip=0.0 must be > 0"),
    ("algo.ppo_epochs=0", "algo.ppo_epochs=0 must be an integer >= 1"),
])
def test_bad_ppo_options_are_one_line(llm_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        validate(llm_cfg(*TINY, override))


def test_a_huge_log_ratio_on_padding_leaves_the_loss_finite_and_as_without_padding():
    # after the first EOS a row's tokens are padding: log π there may be anything (here a log-ratio of 1e4, whose exp
    # is inf); masked before it is exponentiated, it changes neither the loss, nor its gradient, nor the diagnostics
    g = torch.Generator().manual_seed(0)
    lengths = [3, 1, 4]
    mask = (torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]).float()
    old = -torch.rand(3, 4, generator=g)
    logp = (old + 0.3 * torch.randn(3, 4, generator=g)).masked_fill(mask == 0, 1.0e4).requires_grad_()
    values, old_values, returns, adv = (torch.randn(3, 4, generator=g) for _ in range(4))
    values.requires_grad_()
    kw = dict(eps_low=0.2, eps_high=0.28, value_clip=0.2, vf_coef=0.1, n_tokens=mask.sum())
    loss, st = ppo.ppo_token_loss(logp, old, values, old_values, returns, adv, mask, **kw)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in st.values())
    assert torch.isfinite(logp.grad).all() and torch.all(logp.grad[mask == 0] == 0)
    # each row on its own, cut at its length: no padding at all; the token sums add up to the padded batch's
    unpadded, sums = 0.0, dict.fromkeys(("clipfrac", "value_clipfrac", "approxkl", "ratio"), 0.0)
    for b, n in enumerate(lengths):
        lp = logp.detach()[b:b + 1, :n].clone().requires_grad_()
        row, row_st = ppo.ppo_token_loss(lp, old[b:b + 1, :n], values.detach()[b:b + 1, :n], old_values[b:b + 1, :n],
                                         returns[b:b + 1, :n], adv[b:b + 1, :n], torch.ones(1, n), **kw)
        row.backward()
        torch.testing.assert_close(logp.grad[b, :n], lp.grad[0])
        unpadded = unpadded + row
        for k in sums:
            sums[k] += row_st[k]
    torch.testing.assert_close(loss, unpadded)
    for k, v in sums.items():
        torch.testing.assert_close(st[k], v)
