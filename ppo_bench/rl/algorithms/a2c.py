"""A2C: the synchronous advantage actor-critic (Mnih et al. 2016, A3C made synchronous as in the PPO paper
§6.2). Each iteration: N actors × T (short) steps, n-step returns (GAE with λ = 1), one RMSProp step per run
on −L^PG − c·entropy + c_v·½(V − V^targ)². With a ``trust_region`` (``acer_trust_region``) the policy part
of the gradient, per sample in the distribution's parameters, is first projected onto ACER's linearised
KL constraint. Settings: conf/algo/a2c.yaml.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_bench.rl.algorithms.policy_gradient import policy_gradient_objective
from ppo_bench.rl.engine.updates import gradient_wrt
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.losses import clipped_value_loss, masked_mean
from ppo_bench.rl.engine.optim import PerRunRMSprop, linear_annealing
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm


def a2c_value_loss(value: Tensor, ret: Tensor, w: Tensor, vf_coef: float) -> Tensor:
    # baselines a2c (2017, a2c.py with utils.mse = square / 2): c_v · ½ (R − V(s))², mean over the valid samples, per run
    return vf_coef * 0.5 * masked_mean(clipped_value_loss(value, ret, value, None), w, dim=1)


def a2c_loss(logp: Tensor, adv: Tensor, entropy: Tensor, value: Tensor, ret: Tensor, w: Tensor,
             ent_coef: float, vf_coef: float) -> Tensor:
    # Mnih et al. 2016, Algorithm S3 (A3C), as baselines a2c writes it: −[log π(a|s) Â + β H(π(·|s))] + c_v · ½ (R − V(s))², per run
    policy = masked_mean(policy_gradient_objective(logp, adv) + ent_coef * entropy, w, dim=1)
    return -policy + a2c_value_loss(value, ret, w, vf_coef)


@register_algorithm("a2c")
class A2C(Algorithm):
    standardize_advantages = False  # A3C/A2C use the raw n-step advantages

    @staticmethod
    def check(cfg) -> None:
        a = cfg.algo
        for key in ("lr", "rms_alpha", "rms_eps"):
            if not a[key] > 0:
                raise ConfigError(f"algo.{key}={a[key]} must be > 0")
        for key in ("ent_coef", "vf_coef"):
            if not a[key] >= 0:
                raise ConfigError(f"algo.{key}={a[key]} must be >= 0")
        if a.max_grad_norm is not None and not a.max_grad_norm > 0:
            raise ConfigError(f"algo.max_grad_norm={a.max_grad_norm} must be > 0 or null")

    def __init__(self, trainer, trust_region=None):
        self.tr, self.model, self.dist = trainer, trainer.model, trainer.dist
        a = trainer.cfg.algo
        self.lr, self.anneal = float(a.lr), bool(a.anneal_lr)
        self.ent_coef, self.vf_coef = float(a.ent_coef), float(a.vf_coef)
        self.max_grad_norm = None if a.max_grad_norm is None else float(a.max_grad_norm)
        self.opt = PerRunRMSprop(self.model.flat, float(a.rms_alpha), float(a.rms_eps))
        self.trust_region = trust_region

    def hparams_of(self, r: int) -> dict[str, float]:
        return {}

    def run_state(self, r: int) -> dict:
        st = {"rmsprop": self.opt.run_state(r), "hparams": {}}
        if self.trust_region is not None:
            st["average_policy"] = self.trust_region.run_state(r)
        return st

    def load_run_state(self, r: int, st: dict) -> None:
        self.opt.load_run_state(r, st["rmsprop"])
        if self.trust_region is not None:
            self.trust_region.load_run_state(r, st["average_policy"])

    def learning_rate(self) -> Tensor:
        if not self.anneal:
            return torch.full((self.tr.R,), self.lr)
        return linear_annealing(self.tr.iteration.float() / self.tr.n_iter, self.lr)

    def update(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        dist, model, w = self.dist, self.model, data["valid"]
        active = self.tr.active
        params, value, tape = model.forward_taped(data["obs"])

        def policy_objective(p: Tensor):  # per sample: its gradient in p is that sample's own
            per_sample = policy_gradient_objective(dist.log_prob(p, data["actions"]), data["adv"])
            return (per_sample + self.ent_coef * dist.entropy(p)).mul(w).sum(), ()

        g, _ = gradient_wrt(policy_objective, params)  # ∂/∂φ_s of each sample's objective
        stats = {}
        if self.trust_region is not None:
            g, stats = self.trust_region.project(data["obs"], params, g, w)
        n = w.sum(1).clamp(min=1.0).view(-1, 1)
        g_params = -g / n.unsqueeze(-1)
        g_value, _ = gradient_wrt(lambda v: (a2c_value_loss(v, data["ret"], w, self.vf_coef).sum(), ()), value)
        model.flat.grad = model.backward_taped(tape, g_params, g_value)
        lr = self.learning_rate()
        norms = self.opt.step(lr, active, self.max_grad_norm)
        if self.trust_region is not None:
            self.trust_region.follow(model.flat.detach(), active)
        with torch.no_grad():
            logp = dist.log_prob(params, data["actions"])
            entropy = dist.entropy(params)
            loss = a2c_loss(logp, data["adv"], entropy, value, data["ret"], w, 0.0, 0.0)
            new_params, _ = model(data["obs"])
            kl = masked_mean(dist.kl(data["params"], new_params), w, dim=1)
        return {"policy": loss, "value": masked_mean(clipped_value_loss(value, data["ret"], value, None), w, dim=1),
                "entropy": masked_mean(entropy, w, dim=1), "kl": kl, "lr": lr, "grad_norm": norms, **stats}

    def log_values(self, stats: dict[str, Tensor], r: int) -> dict[str, Tensor | float]:
        values = {"losses/policy": stats["policy"][r], "losses/value": stats["value"][r],
                  "losses/entropy": stats["entropy"][r], "stats/kl": stats["kl"][r],
                  "charts/learning_rate": stats["lr"][r], "stats/grad_norm": stats["grad_norm"][r]}
        if "projected_frac" in stats:
            values["stats/projected_frac"] = stats["projected_frac"][r]
            values["stats/kl_to_average"] = stats["kl_to_average"][r]
        return values
