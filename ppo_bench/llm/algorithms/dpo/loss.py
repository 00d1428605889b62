"""DPO and its variants: one small function per objective, behind a registry (docs/llm.md, "DPO").

Every loss takes the summed response log-probs of the policy and the reference for the chosen (y⁺)
and rejected (y⁻) responses, [B] each, and returns ``(losses, chosen_rewards, rejected_rewards)``,
[B] each: the per-pair loss and the implicit rewards r̂(y|x) = β (log π(y|x) − log π_ref(y|x)),
detached, as in the DPO authors' reference code (``preference_loss``) and TRL. ``algo.loss`` picks the function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Logps = torch.Tensor
LossOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class LossOptions:
    beta: float = 0.1
    label_smoothing: float = 0.0
    beta_chosen: float = 0.6
    beta_rejected: float = 0.2
    dpop_lambda: float = 1.0
    sft_alpha: float = 0.2

    @classmethod
    def from_config(cls, a) -> "LossOptions":
        return cls(**{k: float(a[k]) for k in cls.__dataclass_fields__})


def implicit_rewards(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
                     beta_chosen: float, beta_rejected: float) -> tuple[torch.Tensor, torch.Tensor]:
    # DPO (Rafailov et al. 2023) eq. 5 less β log Z(x): r̂(y|x) = β (log π(y|x) − log π_ref(y|x)), detached: for the metrics
    return (beta_chosen * (policy_chosen - reference_chosen).detach(),
            beta_rejected * (policy_rejected - reference_rejected).detach())


def preference_logits(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps) -> torch.Tensor:
    # DPO eq. 7's argument over β: h = (log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻)), every variant's logits
    return (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)


def sigmoid(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
            options: LossOptions) -> LossOut:
    # DPO, Rafailov et al. 2023 eq. 7: −log σ(β h)
    h = preference_logits(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    return -F.logsigmoid(options.beta * h), *implicit_rewards(policy_chosen, policy_rejected, reference_chosen,
                                                                  reference_rejected, options.beta, options.beta)


def ipo(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
        options: LossOptions) -> LossOut:
    # IPO, Azar et al. 2023 eq. 17 (summed log-probs, as the DPO authors' ``preference_loss``): (h − 1/(2β))²
    h = preference_logits(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    return (h - 1.0 / (2.0 * options.beta)) ** 2, *implicit_rewards(policy_chosen, policy_rejected, reference_chosen,
                                                                   reference_rejected, options.beta, options.beta)


def cdpo(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
         options: LossOptions) -> LossOut:
    # conservative DPO (Mitchell 2023, "a note on DPO with noisy preferences"): labels flipped with probability ε
    z = options.beta * preference_logits(policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    eps = options.label_smoothing
    losses = -(1.0 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)
    return losses, *implicit_rewards(policy_chosen, policy_rejected, reference_chosen, reference_rejected, options.beta,
                                     options.beta)


def reference_free(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
                   options: LossOptions) -> LossOut:
    # DPO against a uniform reference (Rafailov et al. 2023 §5 ablation; TRL's reference_free): −log σ(β(log π(y⁺) − log π(y⁻)))
    zero = torch.zeros_like(policy_chosen)
    return sigmoid(policy_chosen, policy_rejected, zero, zero, options)


def asymmetric(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
               options: LossOptions) -> LossOut:
    # asymmetric β (docs/llm.md, "DPO"): anchors the chosen side harder than the rejected: −log σ(β⁺(log π − log π_ref)(y⁺) − β⁻(log π − log π_ref)(y⁻)), β⁺ > β⁻
    chosen, rejected = implicit_rewards(policy_chosen, policy_rejected, reference_chosen, reference_rejected,
                                        options.beta_chosen, options.beta_rejected)
    logits = (options.beta_chosen * (policy_chosen - reference_chosen)
              - options.beta_rejected * (policy_rejected - reference_rejected))
    return -F.logsigmoid(logits), chosen, rejected


def dpop(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
         options: LossOptions) -> LossOut:
    # DPO-P (after Pal et al. 2024, DPOP): L_DPO + λ·max(0, −r̂(y⁺|x)), keeps r̂(y⁺|x) > 0
    losses, chosen, rejected = sigmoid(policy_chosen, policy_rejected, reference_chosen, reference_rejected, options)
    return losses + options.dpop_lambda * torch.relu(-options.beta * (policy_chosen - reference_chosen)), chosen, rejected


def dpo_sft(policy_chosen: Logps, policy_rejected: Logps, reference_chosen: Logps, reference_rejected: Logps,
            options: LossOptions) -> LossOut:
    # DPO + SFT (RPO, Pang et al. 2024): L_DPO + α·(−log π(y⁺|x))
    losses, chosen, rejected = sigmoid(policy_chosen, policy_rejected, reference_chosen, reference_rejected, options)
    return losses - options.sft_alpha * policy_chosen, chosen, rejected


DPO_LOSSES: dict[str, Callable[..., LossOut]] = {
    f.__name__: f for f in (sigmoid, ipo, cdpo, reference_free, asymmetric, dpop, dpo_sft)
}
# losses that never read the reference log-probs: no reference pass is made for them
REFERENCE_FREE = ("reference_free",)
