"""Vanilla policy gradient with an adaptive step size (the PPO paper's §6.2, footnote 3).

Each iteration: one Adam step on the whole batch along the gradient of L^PG = Ê[log π_θ(a_t|s_t) Â_t]
(PPO paper eq. 2); then the step size adapts to the KL divergence that step caused, like the adaptive
KL penalty (÷ 1.5 when KL > 2·target, × 1.5 when KL < target/2); then the value function's own
regression (``ValueFit``, as in TRPO). Each run has its own step size. Settings: conf/algo/vpg.yaml.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_bench.rl.algorithms.policy_gradient import policy_gradient_objective
from ppo_bench.rl.engine.updates import gradient_wrt
from ppo_bench.rl.algorithms.value_fit import ValueFit
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.losses import masked_mean
from ppo_bench.rl.engine.optim import PerRunAdam
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm


def adapt_step_size(lr: Tensor, kl: Tensor, kl_target: float) -> Tensor:
    # PPO paper footnote 3: "the Adam stepsize is adjusted based on the KL divergence": ÷1.5 above 2·target, ×1.5 below target/2
    lr = torch.where(kl > 2 * kl_target, lr / 1.5, lr)
    return torch.where(kl < kl_target / 2, lr * 1.5, lr)


@register_algorithm("vpg")
class VanillaPG(Algorithm):
    standardize_advantages = True  # as for PPO and TRPO (baselines standardise the batch's advantages)

    @staticmethod
    def check(cfg) -> None:
        a = cfg.algo
        if cfg.model.arch != "separate":
            raise ConfigError("algo=vpg fits its value function apart from the policy: it needs model.arch=separate")
        for key in ("lr", "kl_target", "vf_lr"):
            if not a[key] > 0:
                raise ConfigError(f"algo.{key}={a[key]} must be > 0")
        for key in ("vf_epochs", "vf_minibatch_size"):
            if not isinstance(a[key], int) or a[key] <= 0:
                raise ConfigError(f"algo.{key}={a[key]} must be a positive integer")

    def __init__(self, trainer):
        self.tr, self.model, self.dist = trainer, trainer.model, trainer.dist
        a = trainer.cfg.algo
        self.kl_target = float(a.kl_target)
        self.lr = torch.full((trainer.R,), float(a.lr))  # per run, adapted after every step
        self.opt = PerRunAdam(self.model.flat)
        self.value_fit = ValueFit(trainer, a.vf_epochs, a.vf_lr, a.vf_minibatch_size)

    def hparams_of(self, r: int) -> dict[str, float]:
        return {"lr": float(self.lr[r])}

    def run_state(self, r: int) -> dict:
        return {"adam": self.opt.run_state(r), "value_adam": self.value_fit.run_state(r),
                "hparams": self.hparams_of(r)}

    def load_run_state(self, r: int, st: dict) -> None:
        self.opt.load_run_state(r, st["adam"])
        self.value_fit.load_run_state(r, st["value_adam"])
        self.lr[r] = st["hparams"]["lr"]

    def update(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        dist, model, w = self.dist, self.model, data["valid"]
        active = self.tr.active
        params, _, tape = model.forward_taped(data["obs"])

        def loss(p: Tensor):
            objective = masked_mean(policy_gradient_objective(dist.log_prob(p, data["actions"]), data["adv"]), w, dim=1)
            return -objective.sum(), (-objective,)

        g_params, (policy_loss,) = gradient_wrt(loss, params)
        model.flat.grad = model.backward_taped(tape, g_params, torch.zeros_like(w))
        lr = self.lr.clone()
        norms = self.opt.step(lr, active, None, want_norms=True)
        with torch.no_grad():
            new_params, _ = model(data["obs"])
            kl = masked_mean(dist.kl(data["params"], new_params), w, dim=1)
        self.lr = torch.where(active, adapt_step_size(self.lr, kl, self.kl_target), self.lr)
        value_loss = self.value_fit.fit(data)
        return {"policy": policy_loss, "value": value_loss, "kl": kl, "lr": lr, "grad_norm": norms,
                "entropy": masked_mean(dist.entropy(new_params), w, dim=1)}

    def log_values(self, stats: dict[str, Tensor], r: int) -> dict[str, Tensor | float]:
        return {"losses/policy": stats["policy"][r], "losses/value": stats["value"][r],
                "losses/entropy": stats["entropy"][r], "stats/kl": stats["kl"][r],
                "charts/learning_rate": stats["lr"][r], "stats/grad_norm": stats["grad_norm"][r]}
