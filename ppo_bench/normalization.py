"""Observation normalisation and reward scaling with a run axis (SPEC §2.1, §2.6).

Gymnasium's NormalizeObservation / NormalizeReward keep one set of statistics per vector env; a
population steps many runs through one vector env, so here every statistic carries a leading run
axis R and is updated only from that run's own N environments.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RunningMeanStd:
    """Per-run running mean and variance (Chan et al. parallel update), shape (R, *feature)."""

    def __init__(self, runs: int, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = torch.zeros((runs, *shape), dtype=torch.float64)
        self.var = torch.ones((runs, *shape), dtype=torch.float64)
        self.count = torch.full((runs,), epsilon, dtype=torch.float64)

    def update(self, x: Tensor, active: Tensor | None = None) -> None:
        """x: (R, N, *feature) — a batch of N samples per run. Runs with active=False keep their stats."""
        x = x.to(torch.float64)
        b_mean, b_var, n = x.mean(1), x.var(1, unbiased=False), x.shape[1]
        extra = (1,) * (self.mean.dim() - 1)
        count = self.count.view(-1, *extra)
        delta = b_mean - self.mean
        tot = count + n
        new_mean = self.mean + delta * n / tot
        m2 = self.var * count + b_var * n + delta.pow(2) * count * n / tot
        new_var = m2 / tot
        if active is None:
            self.mean, self.var, self.count = new_mean, new_var, self.count + n
        else:
            a = active.view(-1, *extra)
            self.mean = torch.where(a, new_mean, self.mean)
            self.var = torch.where(a, new_var, self.var)
            self.count = torch.where(active, self.count + n, self.count)

    def state_dict(self, r: int) -> dict:
        return {"mean": self.mean[r].clone(), "var": self.var[r].clone(), "count": self.count[r].clone()}

    def load_state_dict(self, r: int, state: dict) -> None:
        self.mean[r], self.var[r], self.count[r] = state["mean"], state["var"], state["count"]


class ObservationNormalizer:
    """o ↦ clip((o − μ) / sqrt(σ² + ε), ±clip), statistics updated with every observation seen."""

    def __init__(self, runs: int, obs_dim: int, clip: float, enabled: bool = True, epsilon: float = 1e-8):
        self.enabled, self.clip, self.epsilon = enabled, clip, epsilon
        self.rms = RunningMeanStd(runs, (obs_dim,))

    def __call__(self, obs: Tensor, update: bool = True, active: Tensor | None = None) -> Tensor:
        """obs: (R, N, obs_dim) float64 raw observations → float32 normalised."""
        if not self.enabled:
            return obs.to(torch.float32)
        if update:
            self.rms.update(obs, active)
        mean, var = self.rms.mean.unsqueeze(1), self.rms.var.unsqueeze(1)
        out = (obs - mean) / torch.sqrt(var + self.epsilon)
        return out.clamp_(-self.clip, self.clip).to(torch.float32)


class RewardScaler:
    """Divide rewards by the running std of the discounted return (baselines' VecNormalize)."""

    def __init__(self, runs: int, envs: int, gamma: float, clip: float, enabled: bool = True, epsilon: float = 1e-8):
        self.enabled, self.gamma, self.clip, self.epsilon = enabled, gamma, clip, epsilon
        self.rms = RunningMeanStd(runs)
        self.returns = torch.zeros((runs, envs), dtype=torch.float64)

    def __call__(self, rewards: Tensor, done: Tensor, valid: Tensor, active: Tensor | None = None) -> Tensor:
        """rewards, done, valid: (R, N); a reset row (valid=False) does not add to the return."""
        if not self.enabled:
            return rewards
        self.returns = torch.where(valid, self.returns * self.gamma + rewards, self.returns)
        self.rms.update(self.returns, active)
        scaled = rewards / torch.sqrt(self.rms.var.unsqueeze(1) + self.epsilon)
        # an episode's discounted return restarts after it ends
        self.returns = torch.where(done, torch.zeros_like(self.returns), self.returns)
        return scaled.clamp(-self.clip, self.clip)
