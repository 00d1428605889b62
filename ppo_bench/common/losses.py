"""The loss toolkit: the formulas that PPO, GRPO, DPO and PPO for language models share, once each.

Pure tensor functions, indifferent to what the leading axis holds: runs of the population engine
(R, B), the sequences of an LM batch (B, L), or one flat batch. Each formula is one small function
named after it, with the paper and equation it comes from.

- ``policy_ratio``          r_t(θ) = π_θ(a_t|s_t) / π_θold(a_t|s_t); ``masked_log_ratio`` keeps an LM's padding out
- ``conservative_surrogate`` L^CPI, PPO's and TRPO's unclipped surrogate
- ``clipped_surrogate``     PPO's L^CLIP with a lower and an upper ε
- ``kl_k1``, ``kl_k3``      sample estimators of KL[p‖q]; the exact KL of the engine's action
                            distributions is their closed form (``ppo_bench.rl.engine.distributions``:
                            ``DiagGaussian.kl``, ``Categorical.kl``)
- ``gae``                   generalised advantage estimation with episode ends and masks
- ``group_advantages``      GRPO's group-normalised outcome advantages
- ``masked_mean``, ``masked_standardize``
- ``clipped_value_loss``    (V − V^targ)², optionally clipped around the old values

The population engine (``ppo_bench.rl.engine.trainer``, ``ppo_bench.rl.algorithms.ppo.objectives``) and the LM
algorithms' losses (``ppo_bench.llm.algorithms.<name>.loss``: GRPO, PPO for LMs) import them from here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def masked_log_ratio(logp: Tensor, logq: Tensor, mask: Tensor | None = None) -> Tensor:
    """log p − log q, 0 outside ``mask`` (an LM's padding): masked before anything exponentiates it, so that a huge
    log-ratio there makes no inf, and inf·0 no NaN."""
    log_ratio = logp - logq
    return log_ratio if mask is None else torch.where(mask.bool(), log_ratio, torch.zeros_like(log_ratio))


def policy_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor | None = None) -> Tensor:
    # PPO (Schulman et al. 2017) eq. 6: r_t(θ) = π_θ(a_t|s_t) / π_θold(a_t|s_t), from log-probabilities; 1 outside mask
    return masked_log_ratio(logp, old_logp, mask).exp()


def conservative_surrogate(ratio: Tensor, adv: Tensor) -> Tensor:
    # PPO eq. 6: L^CPI = r_t(θ) Â_t, the surrogate of conservative policy iteration (no clipping, no penalty); TRPO's
    return ratio * adv


def clipped_surrogate(ratio: Tensor, adv: Tensor, eps_low, eps_high=None) -> Tensor:
    # PPO eq. 7: min(r Â, clip(r, 1−ε, 1+ε) Â); DAPO (Yu et al. 2025) eq. 10 decouples the upper ε
    eps_high = eps_low if eps_high is None else eps_high
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)


def kl_k1(logp: Tensor, logq: Tensor) -> Tensor:
    # Schulman 2020, "Approximating KL divergence": k1 = log p(x) − log q(x), x ~ p, unbiased for KL[p‖q]
    return logp - logq


def kl_k3(logp: Tensor, logq: Tensor, mask: Tensor | None = None) -> Tensor:
    # Schulman 2020: k3 = (q/p − 1) − log(q/p), x ~ p: unbiased for KL[p‖q], never negative; 0 outside mask
    log_ratio = masked_log_ratio(logq, logp, mask)
    return (log_ratio.exp() - 1) - log_ratio


def gae(rewards, values, terminated, truncated, valid, gamma: float, lam: float):
    """(advantages, returns) by GAE, PPO eq. 11–12, computed backwards along the leading (time) axis.

    rewards, terminated, truncated, valid: (T, ...); values: (T + 1, ...), values[T] the value after
    the last step. An episode that *terminated* at t does not bootstrap from V(s_{t+1}); one that ended
    either way does not carry Â_{t+1} back; rows with ``valid`` False (the engine's autoreset rows,
    an LM's prompt or padding tokens) get advantage 0 and pass nothing back. NumPy arrays (the engine's
    rollouts, where a Python loop over NumPy rows is several times cheaper per step than over torch
    tensors) and torch tensors alike; the result has the input's kind and the rewards' dtype.
    """
    if isinstance(rewards, np.ndarray):
        as_float, zeros = (lambda x: np.asarray(x).astype(rewards.dtype)), np.zeros_like
    else:
        as_float, zeros = (lambda x: x.to(rewards.dtype)), torch.zeros_like
    term = as_float(terminated)
    ended = as_float(terminated) + as_float(truncated) > 0
    # paper eq. 12: δ_t = r_t + γ V(s_{t+1}) − V(s_t), no bootstrap past a termination
    delta = rewards + gamma * values[1:] * (1.0 - term) - values[:-1]
    carry = gamma * lam * (1.0 - as_float(ended))
    valid = as_float(valid)
    adv = zeros(rewards)
    last = zeros(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        # paper eq. 11: Â_t = δ_t + (γλ) Â_{t+1}, cut where the episode ended
        last = (delta[t] + carry[t] * last) * valid[t]
        adv[t] = last
    return adv, adv + values[:-1]


def equal_reward_groups(rewards: Tensor, group_size: int) -> Tensor:
    """[n_groups] bool: every member of the group got exactly the group's first reward (no learning signal)."""
    grouped = rewards.view(-1, group_size)
    return (grouped == grouped[:, :1]).all(dim=1)


def group_advantages(rewards: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> Tensor:
    """Â_i = (r_i − mean(r_group)) / (std + eps): DeepSeekMath (Shao et al. 2024) §4.1.2, outcome supervision.

    ``scale``: ``group`` divides by each group's std (the paper), ``batch`` by the std of the whole
    batch, ``none`` not at all (Dr. GRPO, Liu et al. 2025). std is the sample std, as in TRL.
    A group whose rewards are all equal gets advantage exactly 0 for every member, also when the
    float mean of equal rewards is not exactly that reward (1.2 in float32).
    """
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    centred = torch.where(equal_reward_groups(rewards, group_size).unsqueeze(1), torch.zeros_like(centred), centred)
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True)
    elif scale == "batch":
        std = rewards.std().expand(grouped.shape[0], 1)
    elif scale == "none":
        return centred.flatten()
    else:
        raise ValueError(f"scale={scale!r} is not one of: group, batch, none")
    return (centred / torch.where(std > 0, std + eps, torch.ones_like(std))).flatten()


def masked_mean(x: Tensor, mask: Tensor, dim=None) -> Tensor:
    """Σ x·mask / Σ mask over ``dim`` (all axes when None); 0 where the mask is empty."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_standardize(x: Tensor, mask: Tensor, eps: float = 1e-8, dim=1) -> Tensor:
    """(x − mean) / (std + eps) over the masked entries along ``dim`` (all axes when None); sample std.

    The engine standardises each run's advantages over its batch (dim 1 of (R, B)); PPO for LMs
    whitens the advantages of all response tokens of a rollout (dim None)."""
    if dim is None:
        return masked_standardize(x.reshape(1, -1), mask.reshape(1, -1), eps).view_as(x)
    n = mask.sum(dim, keepdim=True).clamp(min=1.0)
    mean = (x * mask).sum(dim, keepdim=True) / n
    var = ((x - mean).pow(2) * mask).sum(dim, keepdim=True) / (n - 1).clamp(min=1.0)
    return (x - mean) / (var.sqrt() + eps)


def clipped_value_loss(value: Tensor, target: Tensor, old_value: Tensor, clip: float | None) -> Tensor:
    # PPO eq. 9: L^VF = (V_θ(s_t) − V_t^targ)²; clipped around the old value as in baselines' ppo2 and trlx
    err = (value - target).pow(2)
    if clip is None:
        return err
    clipped = old_value + torch.clamp(value - old_value, -clip, clip)
    return torch.maximum(err, (clipped - target).pow(2))
