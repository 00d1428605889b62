"""GRPO (Shao et al. 2024, DeepSeekMath §4.1): the equations, one small function each, and the loss.

J(θ) = (1/G) Σ_i (1/|o_i|) Σ_t { min[ρ_{i,t} Â_i, clip(ρ_{i,t}, 1−ε, 1+ε_high) Â_i] − β D_KL[π_θ‖π_ref] }
ρ_{i,t} = π_θ(o_{i,t}|q, o_{i,<t}) / π_θold(o_{i,t}|q, o_{i,<t}),  Â_i = (r_i − mean(r)) / std(r)

The ratio, the clipped surrogate (with DAPO's upper ε), the k3 KL estimator and the group-normalised
advantages are the shared ones of ``ppo_bench.common.losses``; what is GRPO's own is the normalisation
over tokens (three of them, one per paper) and the loss itself.
"""

from __future__ import annotations

import torch

from ppo_bench.common.losses import clipped_surrogate, kl_k3, policy_ratio


def per_sequence_mean(masked: torch.Tensor, mask: torch.Tensor, n_seqs: int, n_tokens: int, max_len: int) -> torch.Tensor:
    # DeepSeekMath eq. 3: (1/G) Σ_i (1/|o_i|) Σ_t
    return (masked.sum(1) / mask.sum(1).clamp(min=1)).sum() / n_seqs


def token_mean(masked: torch.Tensor, mask: torch.Tensor, n_seqs: int, n_tokens: int, max_len: int) -> torch.Tensor:
    # DAPO (Yu et al. 2025) eq. 8, token-level: Σ_i Σ_t / Σ_i |o_i|
    return masked.sum() / max(n_tokens, 1)


def constant_normaliser(masked: torch.Tensor, mask: torch.Tensor, n_seqs: int, n_tokens: int, max_len: int) -> torch.Tensor:
    # Dr. GRPO (Liu et al. 2025), its unbiased objective: Σ_i Σ_t / (G · L_max), no length bias
    return masked.sum() / (n_seqs * max_len)


NORMALISATIONS = {"grpo": per_sequence_mean, "dapo": token_mean, "dr_grpo": constant_normaliser}  # algo.loss_type


def normalise_tokens(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, n_seqs: int, n_tokens: int, max_len: int) -> torch.Tensor:
    """Σ over these rows' tokens, normalised as for the whole batch (so micro-batches add up to it) by ``loss_type``'s
    normalisation. ``n_seqs`` and ``n_tokens`` count the whole batch; ``max_len`` is the max completion length."""
    if loss_type not in NORMALISATIONS:
        raise ValueError(f"loss_type={loss_type!r} is not one of: {', '.join(NORMALISATIONS)}")
    return NORMALISATIONS[loss_type](per_token * mask, mask, n_seqs, n_tokens, max_len)


def grpo_loss(
    logp: torch.Tensor,  # [n, C] log π_θ, with gradient
    old_logp: torch.Tensor,  # [n, C] log π_θold (= logp.detach() when μ = 1)
    ref_logp: torch.Tensor | None,  # [n, C] log π_ref, or None when β = 0
    adv: torch.Tensor,  # [n] one advantage per completion
    mask: torch.Tensor,  # [n, C] 1 up to the first EOS
    *,
    eps_low: float,
    eps_high: float,
    beta: float,
    loss_type: str,
    n_seqs: int,
    n_tokens: int,
    max_len: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """−J_GRPO for these rows, and token sums of the diagnostics (clipped fractions, KL). Positions outside ``mask``
    take no part: their log-ratios are masked before they are exponentiated."""
    ratio = policy_ratio(logp, old_logp, mask)
    adv = adv.unsqueeze(1)
    per_token = clipped_surrogate(ratio, adv, eps_low, eps_high)
    kl = kl_k3(logp, ref_logp, mask) if beta > 0 else None  # D_KL[π_θ‖π_ref], DeepSeekMath eq. 4
    if kl is not None:
        per_token = per_token - beta * kl
    loss = -normalise_tokens(per_token, mask, loss_type, n_seqs, n_tokens, max_len)

    with torch.no_grad():
        m = mask.bool()
        low = (ratio < 1.0 - eps_low) & (adv < 0)  # clipped from below: the update is held back
        high = (ratio > 1.0 + eps_high) & (adv > 0)
        stats = {
            "clip_low": (low & m).sum().float(),
            "clip_high": (high & m).sum().float(),
            "ratio_max": ratio[m].max() if m.any() else torch.tensor(1.0),
            "kl": (kl.detach() * mask).sum() if kl is not None else torch.tensor(0.0),
            "tokens": mask.sum().float(),
        }
    return loss, stats
