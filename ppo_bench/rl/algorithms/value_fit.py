"""The value function fitted by regression on its own, as TRPO and vanilla policy gradient do (baselines'
trpo_mpi: a few epochs of minibatch Adam on (V(s_t) − V_t^targ)² after each policy step).

Only the value network's parameters move: the policy part of the gradient is zero, so Adam's moments there
stay zero and so does its step. Requires ``model.arch=separate`` (a shared trunk would move the policy).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_bench.rl.engine import rng
from ppo_bench.common.losses import clipped_value_loss, masked_mean
from ppo_bench.rl.engine.optim import PerRunAdam
from ppo_bench.rl.engine.updates import gradient_wrt, minibatches


class ValueFit:
    """``adam_eps``: Adam's ε (Engstrom et al. 2020: 1e-5); ``clip``: the value clipped around its prediction at
    rollout time, as PPO's (``clipped_value_loss``; Engstrom et al.'s TRPO+ on Humanoid)."""

    def __init__(self, trainer, epochs: int, lr: float, minibatch_size: int, adam_eps: float = 1e-8,
                 clip: float | None = None):
        self.tr, self.model = trainer, trainer.model
        self.epochs, self.lr, self.M = int(epochs), float(lr), int(minibatch_size)
        self.clip = None if clip is None else float(clip)
        self.opt = PerRunAdam(self.model.flat, eps=float(adam_eps))

    def fit(self, data: dict[str, Tensor]) -> Tensor:
        """epochs × (B // M) Adam steps of each active run on its value loss; its mean over the steps (R,)."""
        R, B = data["obs"].shape[:2]
        lr = torch.full((R,), self.lr)
        n_mb = max(B // self.M, 1)
        M = min(self.M, B)
        total = torch.zeros(R)
        for epoch in range(self.epochs):
            perm = rng.permutations(self.tr.seeds, rng.VALUE_PERMUTATION, self.tr.iteration * self.epochs + epoch, B)
            obs, ret, old, w = (minibatches(data[k], perm, M) for k in ("obs", "ret", "values", "valid"))
            for j in range(n_mb):
                params, value, tape = self.model.forward_taped(obs[j])
                if self.clip is None:
                    err = value - ret[j]
                    loss = masked_mean(clipped_value_loss(value, ret[j], value, None), w[j], dim=1)
                    g_value = 2 * err * w[j] / w[j].sum(1, keepdim=True).clamp(min=1.0)
                else:
                    g_value, (loss,) = gradient_wrt(lambda v: self.loss_and_mean(v, ret[j], old[j], w[j]), value)
                self.model.flat.grad = self.model.backward_taped(tape, torch.zeros_like(params), g_value)
                self.opt.step(lr, self.tr.active)
                total += loss
        return total / (self.epochs * n_mb)

    def loss_and_mean(self, value: Tensor, ret: Tensor, old: Tensor, w: Tensor):
        loss = masked_mean(clipped_value_loss(value, ret, old, self.clip), w, dim=1)
        return loss.sum(), (loss,)

    def run_state(self, r: int) -> dict:
        return self.opt.run_state(r)

    def load_run_state(self, r: int, state: dict) -> None:
        self.opt.load_run_state(r, state)
