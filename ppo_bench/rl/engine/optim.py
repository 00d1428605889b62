"""Adam with a run axis: per-run step size, step count, gradient-norm clipping, and only the active runs step.

Adam is elementwise, so stacking R runs' parameters in one (R, P) tensor leaves each run's moments
its own; what needs a run axis is everything that is not elementwise — the step size (a per-run
schedule), the bias-correction step count, the global gradient norm used for clipping, and
skipping runs that stopped (finished, or failed on a non-finite loss).
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_annealing(progress: Tensor, lr: float) -> Tensor:
    """Step size decaying linearly from lr to 0 as progress (fraction of updates done) goes 0 → 1."""
    return lr * (1.0 - progress)


class PerRunAdam:
    """Adam (Kingma & Ba) on one flat (R, P) parameter tensor, same update as torch.optim.Adam."""

    def __init__(self, param: torch.nn.Parameter, betas=(0.9, 0.999), eps: float = 1e-8,
                 value_columns: slice | None = None):
        """value_columns: the columns of a value function of its own, which then may take its own step size and
        be left out of gradient clipping (``step``'s value_lr, clip_policy_only): two Adams in one."""
        self.param, self.value_columns = param, value_columns
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.steps = torch.zeros(param.shape[0], dtype=torch.int64)

    @torch.no_grad()
    def step(self, lr: Tensor, active: Tensor, max_grad_norm: float | None = None,
             want_norms: bool = False, value_lr: Tensor | None = None, clip_policy_only: bool = False) -> Tensor | None:
        """One Adam step for the active runs.

        Returns each run's gradient norm before clipping when clipping or ``want_norms`` asks for it (of the
        policy's columns only with ``clip_policy_only``, which clips only those). ``value_lr``: the step size of
        the value columns, where it is not ``lr``.
        Each active run is its own tensor in torch's fused Adam kernel, so a run's update is the same bits
        alone or in a population, whichever of its neighbours are active (the kernel splits a tensor into
        vector and scalar parts by its length: one (R, P) tensor would put a run's last elements into
        another part than a (1, P) one). A stopped run's row, NaN or not, is never read.
        """
        g = self.param.grad
        policy = None
        if clip_policy_only or value_lr is not None:
            vc = self.value_columns
            policy = torch.ones(g.shape[1], dtype=torch.bool)
            policy[vc] = False
        clipped = g if not clip_policy_only else g * policy
        norms = torch.linalg.vector_norm(clipped, dim=1) if (max_grad_norm is not None or want_norms) else None
        if max_grad_norm is not None:
            scale = torch.clamp(max_grad_norm / (norms + 1e-6), max=1.0).view(-1, 1)
            g = g * scale if not clip_policy_only else torch.where(policy, g * scale, g)
        self.steps += active.long()
        steps = self.steps.to(torch.float32).unbind(0)
        rows = (self.param, g, self.m, self.v)
        if value_lr is None:
            self._fused(lr.tolist(), steps, *(x.unbind(0) for x in rows), active)
        else:  # the policy's columns (before and after the value's) at lr, the value's at value_lr
            vc = self.value_columns
            for part, rate in (((slice(0, vc.start), slice(vc.stop, None)), lr), ((vc,), value_lr)):
                for cols in part:
                    self._fused(rate.tolist(), steps, *(x[:, cols].unbind(0) for x in rows), active)
        return norms

    def _fused(self, rates, steps, params, grads, ms, vs, active: Tensor) -> None:
        by_rate: dict[float, list[int]] = {}
        for r in active.nonzero().flatten().tolist():
            by_rate.setdefault(rates[r], []).append(r)
        for rate, rs in by_rate.items():
            if params[rs[0]].numel() == 0:
                continue
            torch._fused_adam_([params[r] for r in rs], [grads[r] for r in rs], [ms[r] for r in rs],
                               [vs[r] for r in rs], [], [steps[r] for r in rs], lr=rate, beta1=self.beta1,
                               beta2=self.beta2, weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)

    def run_state(self, r: int) -> dict:
        return {"m": self.m[r].clone(), "v": self.v[r].clone(), "steps": int(self.steps[r])}

    def load_run_state(self, r: int, state: dict) -> None:
        self.m[r], self.v[r], self.steps[r] = state["m"], state["v"], state["steps"]


class PerRunRMSprop:
    """RMSProp (Tieleman & Hinton 2012, the optimiser of A3C/A2C, Mnih et al. 2016) in the form of the code the PPO
    paper compared against (baselines a2c and acer, 2017: tf.train.RMSPropOptimizer, no momentum), on one flat
    (R, P) tensor: mean square s₀ = 1, s ← α s + (1 − α) g², θ ← θ − lr · g / √(s + ε); with a per-run step
    size, gradient-norm clipping and an active mask like PerRunAdam. Not torch.optim.RMSprop, whose s₀ = 0 and
    g / (√s + ε) make the first step ≈ lr · sign(g) / √(1 − α), 10 lr · sign(g) for α = 0.99."""

    def __init__(self, param: torch.nn.Parameter, alpha: float = 0.99, eps: float = 1e-5):
        self.param, self.alpha, self.eps = param, alpha, eps
        self.square_avg = torch.ones_like(param)  # TensorFlow 1 RMSPropOptimizer: the "rms" slot starts at ones

    @torch.no_grad()
    def step(self, lr: Tensor, active: Tensor, max_grad_norm: float | None = None) -> Tensor:
        """One step for the active runs; returns each run's gradient norm before clipping."""
        g = torch.where(active.view(-1, 1), self.param.grad, 0.0)
        norms = torch.linalg.vector_norm(g, dim=1)
        if max_grad_norm is not None:
            g = g * torch.clamp(max_grad_norm / (norms + 1e-6), max=1.0).view(-1, 1)
        af = active.view(-1, 1).to(g.dtype)
        # TensorFlow's ApplyRMSProp (tensorflow/core/kernels/training_ops.cc), momentum 0: ε inside the square root
        self.square_avg.add_(af * (1 - self.alpha) * (g * g - self.square_avg))
        self.param.sub_(af * lr.view(-1, 1) * g / (self.square_avg + self.eps).sqrt())
        return norms

    def run_state(self, r: int) -> dict:
        return {"square_avg": self.square_avg[r].clone()}

    def load_run_state(self, r: int, state: dict) -> None:
        self.square_avg[r] = state["square_avg"]
