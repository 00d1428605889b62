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

from ppo_bench.llm.logprobs import sequence_logprob, token_logprobs

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


def _rewards(pc: Logps, pr: Logps, rc: Logps, rr: Logps, beta_c: float, beta_r: float) -> tuple[torch.Tensor, torch.Tensor]:
    return beta_c * (pc - rc).detach(), beta_r * (pr - rr).detach()


def _h(pc: Logps, pr: Logps, rc: Logps, rr: Logps) -> torch.Tensor:
    """h = (log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻)), the logits of every variant."""
    return (pc - rc) - (pr - rr)


def sigmoid(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # DPO, Rafailov et al. 2023 eq. 7: −log σ(β h)
    return -F.logsigmoid(o.beta * _h(pc, pr, rc, rr)), *_rewards(pc, pr, rc, rr, o.beta, o.beta)


def ipo(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # IPO, Azar et al. 2023 eq. 17 (summed log-probs, as the DPO authors' ``preference_loss``): (h − 1/(2β))²
    return (_h(pc, pr, rc, rr) - 1.0 / (2.0 * o.beta)) ** 2, *_rewards(pc, pr, rc, rr, o.beta, o.beta)


def cdpo(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # conservative DPO (Mitchell 2023, "a note on DPO with noisy preferences"): labels flipped with probability ε
    z = o.beta * _h(pc, pr, rc, rr)
    losses = -(1.0 - o.label_smoothing) * F.logsigmoid(z) - o.label_smoothing * F.logsigmoid(-z)
    return losses, *_rewards(pc, pr, rc, rr, o.beta, o.beta)


def reference_free(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # DPO against a uniform reference (Rafailov et al. 2023 §5 ablation; TRL's reference_free): −log σ(β(log π(y⁺) − log π(y⁻)))
    zero = torch.zeros_like(pc)
    return sigmoid(pc, pr, zero, zero, o)


def asymmetric(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # asymmetric β (docs/llm.md, "DPO"): anchors the chosen side harder than the rejected: −log σ(β⁺(log π − log π_ref)(y⁺) − β⁻(log π − log π_ref)(y⁻)), β⁺ > β⁻
    chosen, rejected = _rewards(pc, pr, rc, rr, o.beta_chosen, o.beta_rejected)
    return -F.logsigmoid(o.beta_chosen * (pc - rc) - o.beta_rejected * (pr - rr)), chosen, rejected


def dpop(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # DPO-P (after Pal et al. 2024, DPOP): L_DPO + λ·max(0, −r̂(y⁺|x)), keeps r̂(y⁺|x) > 0
    losses, chosen, rejected = sigmoid(pc, pr, rc, rr, o)
    return losses + o.dpop_lambda * torch.relu(-o.beta * (pc - rc)), chosen, rejected


def dpo_sft(pc: Logps, pr: Logps, rc: Logps, rr: Logps, o: LossOptions) -> LossOut:
    # DPO + SFT (RPO, Pang et al. 2024): L_DPO + α·(−log π(y⁺|x))
    losses, chosen, rejected = sigmoid(pc, pr, rc, rr, o)
    return losses - o.sft_alpha * pc, chosen, rejected


DPO_LOSSES: dict[str, Callable[..., LossOut]] = {
    f.__name__: f for f in (sigmoid, ipo, cdpo, reference_free, asymmetric, dpop, dpo_sft)
}
# losses that never read the reference log-probs: no reference pass is made for them
REFERENCE_FREE = ("reference_free",)


def concatenated_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """log π(y|x) summed over the response tokens of every row, [2B], in one forward pass.

    Rows are the B chosen then the B rejected sequences: the prompt left-padded, the response
    right-padded to the batch's longest (``preferences.collate``); prompt tokens and padding are
    outside ``response_mask`` and so outside the sum.
    """
    token_logp, _ = token_logprobs(model, input_ids, attention_mask, response_mask.shape[1])
    return sequence_logprob(token_logp, response_mask)
