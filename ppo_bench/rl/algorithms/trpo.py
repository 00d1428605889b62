"""TRPO (Schulman et al. 2015), batched over the runs of a population.

Each iteration: the policy gradient g of the surrogate L(θ) = Ê[r_t(θ) Â_t] at θ_old; the natural-gradient
direction x ≈ F⁻¹g by conjugate gradient on Fisher-vector products (F the Hessian of the mean exact KL of the
action distribution, plus damping); the full step scaled to the KL boundary, √(2δ / xᵀFx)·x; a backtracking
line search that accepts the first fraction whose surrogate improves and whose mean KL is ≤ δ (else no step);
then the value function's own regression (``ValueFit``). Every run has its own CG iterates, step and
acceptance. Settings: conf/algo/trpo.yaml (baselines' trpo_mpi/run_mujoco.py at da99706).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_bench.rl.engine.updates import gradient_wrt
from ppo_bench.rl.algorithms.value_fit import ValueFit
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.losses import conservative_surrogate, masked_mean, policy_ratio
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm


def fisher_vector_product(model, dist, tape, params: Tensor, w: Tensor, v: Tensor, damping: float) -> Tensor:
    # TRPO (Schulman et al. 2015) §C.1: F v = Jᵀ M J v / n (+ damping·v), M the KL Hessian in the outputs
    Jv = model.jvp_taped(tape, v)
    n = w.sum(1).clamp(min=1.0).view(-1, 1, 1)
    MJv = dist.fisher_vector(params, Jv) * (w.unsqueeze(-1) / n)
    Fv = model.backward_taped(tape, MJv, torch.zeros_like(w))
    return Fv + damping * v


def conjugate_gradient(Avp, b: Tensor, iters: int, residual_tol: float = 1e-10) -> Tensor:
    """x ≈ A⁻¹ b for each row (run) of b (R, P), A symmetric positive definite given by Avp(v) = A v
    (Hestenes & Stiefel 1952; TRPO §C.1). A row whose residual rᵀr falls below the tolerance stops there."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rdotr = (r * r).sum(1)
    for _ in range(iters):
        going = rdotr >= residual_tol
        if not bool(going.any()):
            break
        Ap = Avp(p)
        alpha = torch.where(going, rdotr / (p * Ap).sum(1).clamp(min=1e-30), 0.0).view(-1, 1)
        x = x + alpha * p
        r = r - alpha * Ap
        new_rdotr = (r * r).sum(1)
        beta = torch.where(going, new_rdotr / rdotr.clamp(min=1e-30), 0.0).view(-1, 1)
        p = torch.where(going.view(-1, 1), r + beta * p, p)
        rdotr = torch.where(going, new_rdotr, rdotr)
    return x


def max_step(x: Tensor, Fx: Tensor, max_kl: float) -> Tensor:
    # TRPO §C.1: β = √(2δ / xᵀ F x), the step along x whose quadratic KL model reaches δ
    return torch.sqrt(2 * max_kl / (x * Fx).sum(1).clamp(min=1e-30)).view(-1, 1) * x


def line_search(evaluate, theta: Tensor, full_step: Tensor, max_kl: float, backtracks: int = 10):
    """TRPO §C.1 / Appendix C: try θ + 0.5^k · full_step, k = 0, 1, …, and keep, per run, the first whose
    surrogate improves on θ's and whose mean KL is ≤ δ; a run with none keeps θ.

    evaluate(θ') → (surrogate, mean KL), (R,) each. Returns (new θ, accepted fraction (0 where rejected))."""
    surr0, _ = evaluate(theta)
    frac = torch.zeros(theta.shape[0])
    done = torch.zeros(theta.shape[0], dtype=torch.bool)
    for k in range(backtracks):
        f = 0.5 ** k
        surr, kl = evaluate(theta + f * full_step)
        ok = ~done & torch.isfinite(surr) & torch.isfinite(kl) & (kl <= max_kl) & (surr > surr0)
        frac = torch.where(ok, f, frac)
        done |= ok
        if bool(done.all()):
            break
    return theta + frac.view(-1, 1) * full_step, frac


@register_algorithm("trpo")
class TRPO(Algorithm):
    standardize_advantages = True  # baselines' trpo_mpi standardises the batch's advantages

    @staticmethod
    def check(cfg) -> None:
        a = cfg.algo
        if cfg.model.arch != "separate":
            raise ConfigError("algo=trpo fits its value function apart from the policy: it needs model.arch=separate")
        for key in ("max_kl", "cg_damping", "vf_lr", "vf_adam_eps"):
            if not a[key] > 0:
                raise ConfigError(f"algo.{key}={a[key]} must be > 0")
        for key in ("cg_iters", "vf_epochs", "vf_minibatch_size", "backtracks"):
            if not isinstance(a[key], int) or a[key] <= 0:
                raise ConfigError(f"algo.{key}={a[key]} must be a positive integer")
        if a.vf_clip is not None and not (isinstance(a.vf_clip, (int, float)) and a.vf_clip > 0):
            raise ConfigError(f"algo.vf_clip={a.vf_clip} must be > 0 or null")

    def __init__(self, trainer):
        self.tr, self.model, self.dist = trainer, trainer.model, trainer.dist
        a = trainer.cfg.algo
        self.max_kl, self.damping = float(a.max_kl), float(a.cg_damping)
        self.cg_iters, self.backtracks = int(a.cg_iters), int(a.backtracks)
        self.value_fit = ValueFit(trainer, a.vf_epochs, a.vf_lr, a.vf_minibatch_size, a.vf_adam_eps, a.vf_clip)

    def run_state(self, r: int) -> dict:
        return {"value_adam": self.value_fit.run_state(r), "hparams": {}}

    def load_run_state(self, r: int, st: dict) -> None:
        self.value_fit.load_run_state(r, st["value_adam"])

    def update(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        dist, model, w = self.dist, self.model, data["valid"]
        params, _, tape = model.forward_taped(data["obs"])

        def surrogate(p: Tensor):
            ratio = policy_ratio(dist.log_prob(p, data["actions"]), data["logp"])
            return masked_mean(conservative_surrogate(ratio, data["adv"]), w, dim=1)

        g_params, _ = gradient_wrt(lambda p: (surrogate(p).sum(), ()), params)
        g = model.backward_taped(tape, g_params, torch.zeros_like(w))
        g = torch.where(self.tr.active.view(-1, 1), g, 0.0)  # a stopped run takes no step
        Fvp = lambda v: fisher_vector_product(model, dist, tape, params, w, v, self.damping)  # noqa: E731
        x = conjugate_gradient(Fvp, g, self.cg_iters)
        full_step = max_step(x, Fvp(x), self.max_kl)

        @torch.no_grad()
        def evaluate(theta: Tensor):
            p, _ = model(data["obs"], flat=theta)
            return surrogate(p), masked_mean(dist.kl(data["params"], p), w, dim=1)

        theta = model.flat.detach()
        new_theta, frac = line_search(evaluate, theta, full_step, self.max_kl, self.backtracks)
        with torch.no_grad():
            model.flat.copy_(torch.where(self.tr.active.view(-1, 1), new_theta, theta))
        surr_new, kl = evaluate(model.flat.detach())
        value_loss = self.value_fit.fit(data)
        new_params, _ = model(data["obs"])
        new_params = new_params.detach()
        # the trust region seen as PPO's ratio (Engstrom et al. 2020, Figure 2): max_t π_new/π_old over the batch
        ratio = policy_ratio(dist.log_prob(new_params, data["actions"]), data["logp"])
        return {"policy": -surr_new, "value": value_loss, "kl": kl, "step_fraction": frac,
                "grad_norm": torch.linalg.vector_norm(g, dim=1), "ratio_max": torch.where(w > 0, ratio, 0.0).amax(1),
                "entropy": masked_mean(dist.entropy(new_params), w, dim=1)}

    def log_values(self, stats: dict[str, Tensor], r: int) -> dict[str, Tensor | float]:
        return {"losses/policy": stats["policy"][r], "losses/value": stats["value"][r],
                "losses/entropy": stats["entropy"][r], "stats/kl": stats["kl"][r],
                "stats/step_fraction": stats["step_fraction"][r], "stats/grad_norm": stats["grad_norm"][r],
                "stats/ratio_max": stats["ratio_max"][r]}
