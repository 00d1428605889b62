"""A2C + trust region: A2C whose policy gradient goes through ACER's efficient trust-region update (Wang et
al. 2016, "Sample Efficient Actor-Critic with Experience Replay", §3.3).

An average policy network φ_a follows the policy, φ_a ← α φ_a + (1 − α) φ after each update. Per sample,
with g the gradient of the objective in the distribution's parameters φ(s) and k = ∇_φ KL[f(φ_a(s)) ‖ f(φ(s))],
the step is the solution of the linearised problem min ½‖g − z‖² s.t. kᵀz ≤ δ:
z* = g − max(0, (kᵀg − δ) / ‖k‖²) k, back-propagated through the network in place of g.
Settings: conf/algo/a2c_trust_region.yaml (A2C's, plus ACER's δ and α).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_bench.rl.algorithms.a2c import A2C
from ppo_bench.rl.engine.updates import gradient_wrt
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.losses import masked_mean
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm


def trust_region_projection(g: Tensor, k: Tensor, delta: float) -> tuple[Tensor, Tensor]:
    # ACER (Wang et al. 2016) eq. (13): z* = g − max(0, (kᵀg − δ)/‖k‖²) k, per sample (last axis)
    scale = torch.clamp(((k * g).sum(-1, keepdim=True) - delta) / (k * k).sum(-1, keepdim=True).clamp(min=1e-12),
                        min=0.0)
    return g - scale * k, scale.squeeze(-1) > 0


def average_network(avg: Tensor, flat: Tensor, alpha: float) -> Tensor:
    # ACER Algorithm 2: θ_a ← α θ_a + (1 − α) θ
    return alpha * avg + (1 - alpha) * flat


class TrustRegion:
    def __init__(self, trainer, delta: float, alpha: float):
        self.model, self.dist, self.delta, self.alpha = trainer.model, trainer.dist, float(delta), float(alpha)
        self.avg = trainer.model.flat.detach().clone()  # each run's average network starts at its initial policy

    def project(self, obs: Tensor, params: Tensor, g: Tensor, w: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            avg_params, _ = self.model(obs, flat=self.avg)
        k, _ = gradient_wrt(lambda p: (self.dist.kl(avg_params, p).sum(), ()), params)
        z, projected = trust_region_projection(g, k, self.delta)
        return z, {"projected_frac": masked_mean(projected.float(), w, dim=1),
                   "kl_to_average": masked_mean(self.dist.kl(avg_params, params), w, dim=1)}

    def follow(self, flat: Tensor, active: Tensor) -> None:
        self.avg = torch.where(active.view(-1, 1), average_network(self.avg, flat, self.alpha), self.avg)

    def run_state(self, r: int) -> Tensor:
        return self.avg[r].clone()

    def load_run_state(self, r: int, state: Tensor) -> None:
        self.avg[r] = state


@register_algorithm("a2c_trust_region")
class A2CTrustRegion(Algorithm):
    """A2C composed with a TrustRegion (the registry needs a class: this builds the composed A2C)."""

    @staticmethod
    def check(cfg) -> None:
        A2C.check(cfg)
        a = cfg.algo
        if not a.delta > 0:
            raise ConfigError(f"algo.delta={a.delta} must be > 0")
        if not 0 <= a.average_decay < 1:
            raise ConfigError(f"algo.average_decay={a.average_decay} must lie in [0, 1)")

    def __new__(cls, trainer):
        a = trainer.cfg.algo
        return A2C(trainer, trust_region=TrustRegion(trainer, a.delta, a.average_decay))
