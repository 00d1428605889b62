"""PPO for language models (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022): the equations.

A completion o of prompt q is an episode whose actions are its tokens. Per token t of the response:
  r_t = −β (log π_θold(o_t) − log π_ref(o_t))  (+ the sequence reward r(q, o) at the last token)
  Â_t by GAE over the response tokens only, backwards, as trlx's get_advantages_and_returns
      (γ = 1, λ = 0.95 by default), returns R_t = Â_t + V(s_t)
  L = E_t[−min(ρ_t Â_t, clip(ρ_t, 1−ε, 1+ε) Â_t)] + c1 · E_t[½ max((V − R)², (clip(V, V_old ± ε_V) − R)²)]
The ratio, the clipped surrogate, the k1 KL, GAE and the clipped value loss are the shared ones of
``ppo_bench.common.losses``; what is PPO-for-LMs' own is below.
"""

from __future__ import annotations

import math

import torch

from ppo_bench.common.losses import clipped_surrogate, clipped_value_loss, gae, kl_k1, kl_k3, policy_ratio


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] position of each row's last response token (mask: 1 up to and including the first EOS)."""
    return mask.sum(1).long() - 1


def kl_shaped_rewards(logp: torch.Tensor, ref_logp: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
                      kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token rewards [B, L], their KL part [B, L]): −β·k1 on every response token, plus the
    sequence reward on its last one."""
    # Ziegler et al. 2019 eq. 2, per token as in trlx and InstructGPT: r_t = −β (log π − log π_ref) (+ r(q, o) last)
    non_score = -kl_coef * kl_k1(logp, ref_logp) * mask
    rewards = non_score.clone()
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards, non_score


def response_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                 lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) [B, L] over the response tokens only (0 elsewhere): the shared ``gae`` along
    the token axis, the episode terminating at each row's last response token (no bootstrap after it)."""
    # PPO eq. 11–12 along the tokens of each response (trlx's get_advantages_and_returns): R_t = Â_t + V(s_t)
    B, L = rewards.shape
    ended = torch.zeros(B, L, dtype=torch.bool, device=rewards.device)
    ended[torch.arange(B, device=rewards.device), last_token_index(mask)] = True
    values = torch.cat([values * mask, values.new_zeros(B, 1)], dim=1)  # V after the last token: 0
    adv, returns = gae(rewards.T, values.T, ended.T, torch.zeros_like(ended.T), mask.T > 0, gamma, lam)
    return adv.T, returns.T * mask


def adaptive_kl_coef(kl_coef: float, kl: float, target: float, horizon: int, n_sequences: int) -> float:
    # Ziegler et al. 2019 §2.2: e = clip(KL/KL_target − 1, −0.2, 0.2); β ← β (1 + K_β e), K_β = n / horizon
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * n_sequences / horizon)


class RunningMoments:
    """Mean and sample standard deviation of every sequence score seen so far (Chan et al.'s parallel update of
    count, mean and the sum of squared deviations), for ``algo.reward_norm``; its state is three floats."""

    def __init__(self, count: float = 0.0, mean: float = 0.0, m2: float = 0.0):
        self.count, self.mean, self.m2 = count, mean, m2

    def update(self, x: torch.Tensor) -> None:
        x = x.double().flatten()
        n = x.numel()
        if n == 0:
            return
        b_mean = x.mean().item()
        b_m2 = ((x - b_mean) ** 2).sum().item()
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.m2 += b_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """The sample standard deviation (n − 1); 1 until two scores were seen."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 1.0

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}


def normalised_scores(scores: torch.Tensor, moments: RunningMoments, how: str, eps: float = 1e-8) -> torch.Tensor:
    """The sequence rewards after ``algo.reward_norm``: the statistics first take in this rollout's scores, then
    ``running`` gives (r − mean)/(std + eps) and ``scale`` r/(std + eps) (trlx's ``scale_reward="running"``);
    ``none`` leaves them."""
    if how == "none":
        return scores
    moments.update(scores)
    centred = scores - moments.mean if how == "running" else scores
    return (centred / (moments.std + eps)).to(scores.dtype)


def ppo_token_loss(logp, old_logp, values, old_values, returns, adv, mask, *, eps_low: float, eps_high: float,
                   value_clip: float, vf_coef: float, n_tokens: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The minibatch's loss for these rows (token sums over ``n_tokens``, the minibatch's response
    tokens, so micro-batches add up to it) and token sums of its diagnostics. Positions outside ``mask`` take no
    part: their log-ratios are masked before they are exponentiated."""
    # PPO eq. 9 per response token: −L^CLIP + c1 · ½ L^VF, the value loss clipped around V_old (trlx, TRL)
    ratio = policy_ratio(logp, old_logp, mask)
    policy = -clipped_surrogate(ratio, adv, eps_low, eps_high)
    value = 0.5 * clipped_value_loss(values, returns, old_values, value_clip)  # ½ as in trlx and TRL
    policy_loss = (policy * mask).sum() / n_tokens
    value_loss = (value * mask).sum() / n_tokens
    with torch.no_grad():
        m = mask.bool()
        stats = {
            "policy": policy_loss.detach(),
            "value": value_loss.detach(),
            "clipfrac": ((-adv * ratio < policy) & m).sum().float(),  # the clipped branch is the smaller objective
            "value_clipfrac": (((old_values + (values - old_values).clamp(-value_clip, value_clip) - returns).pow(2)
                                > (values - returns).pow(2)) & m).sum().float(),
            "approxkl": kl_k3(old_logp, logp.detach(), mask).sum(),
            "ratio": (ratio.detach() * mask).sum(),
        }
    return policy_loss + vf_coef * value_loss, stats
