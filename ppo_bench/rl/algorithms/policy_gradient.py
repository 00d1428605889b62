"""What the policy-gradient algorithms share: the score-function objective and its gradient with respect to
the network's outputs (the distribution parameters), which the model's taped backward turns into ∂/∂θ."""

from __future__ import annotations

import torch
from torch import Tensor


def policy_gradient_objective(logp: Tensor, adv: Tensor) -> Tensor:
    # PPO paper eq. (2) (Williams 1992): L^PG = Ê[log π_θ(a_t|s_t) Â_t], per sample
    return logp * adv


def gradient_wrt(f, x: Tensor) -> tuple[Tensor, tuple]:
    """(∂f/∂x, aux) of f(x) = (scalar, aux) by autograd, aux detached."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        total, aux = f(x)
    (g,) = torch.autograd.grad(total, [x])
    return g, tuple(a.detach() for a in aux)
