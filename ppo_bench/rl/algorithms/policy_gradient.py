"""What the policy-gradient algorithms share: the score-function objective (its gradient with respect to the
network's outputs comes from ``ppo_bench.rl.engine.updates.gradient_wrt``)."""

from __future__ import annotations

from torch import Tensor


def policy_gradient_objective(logp: Tensor, adv: Tensor) -> Tensor:
    # PPO paper eq. (2) (Williams 1992): L^PG = Ê[log π_θ(a_t|s_t) Â_t], per sample
    return logp * adv
