"""KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization"): the equations.

With the implied reward r(x, y) = log π(y|x) − log π_ref(y|x), summed over the response tokens:

    z0          = max(0, mean_i r(x_i, y'_i)), no gradient: the reference point, a batch estimate of
                  KL[π‖π_ref] on mismatched examples (x_i, y'_i)
    loss(x, y⁺) = λ_D (1 − σ(β (r(x, y⁺) − z0)))
    loss(x, y⁻) = λ_U (1 − σ(β (z0 − r(x, y⁻))))        KTO eq. 7: λ_y − v(x, y)
"""

from __future__ import annotations

import torch


def kto_reference_point(policy_kl_logps: torch.Tensor, reference_kl_logps: torch.Tensor) -> torch.Tensor:
    # KTO (Ethayarajh et al. 2024) eq. 7's z0 = KL(π(y'|x) ‖ π_ref(y'|x)), estimated on the batch's mismatched pairs: max(0, mean log-ratio), no gradient
    return (policy_kl_logps - reference_kl_logps).mean().detach().clamp(min=0.0)


def kto_loss(policy_logps: torch.Tensor, reference_logps: torch.Tensor, desirable: torch.Tensor, z0: torch.Tensor, beta: float,
             desirable_weight: float, undesirable_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    # KTO eq. 7: λ_y − v(x, y), v = λ_D σ(β(r − z0)) for a desirable y, λ_U σ(β(z0 − r)) for an undesirable one; r = log π(y|x) − log π_ref(y|x)
    logratio = policy_logps - reference_logps
    d = desirable.to(logratio.dtype)
    weight = desirable_weight * d + undesirable_weight * (1.0 - d)
    losses = weight * (1.0 - torch.sigmoid(beta * (2.0 * d - 1.0) * (logratio - z0)))
    return losses, beta * logratio.detach()  # per-example losses, and the implied rewards β r (TRL's rewards)
