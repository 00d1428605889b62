"""Observation normalisation and reward scaling with a run axis (docs: "Populations").

Gymnasium's NormalizeObservation / NormalizeReward keep one set of statistics per vector env; a
population steps many runs through one vector env, so here every statistic carries a leading run
axis R and is updated only from that run's own N environments. They run once per environment step
on small arrays, so they are written in NumPy (a few µs), not torch.
"""

from __future__ import annotations

import numpy as np


class RunningMeanStd:
    """Per-run running mean and variance (Chan et al. parallel update), shape (R, *feature)."""

    def __init__(self, runs: int, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros((runs, *shape))
        self.var = np.ones((runs, *shape))
        self.count = np.full((runs,), epsilon)

    def update(self, x: np.ndarray, active: np.ndarray | None = None) -> None:
        """x: (R, N, *feature) — a batch of N samples per run. Runs with active=False keep their stats."""
        n = x.shape[1]
        extra = (1,) * (self.mean.ndim - 1)
        count = self.count.reshape(-1, *extra)
        tot = count + n
        if n == 1:
            # One actor per run (the paper's MuJoCo setting): batch mean x, batch variance 0. The same
            # numbers as the general formula below (·1 and + 0 are exact), in a third of the NumPy calls:
            # this runs at every environment step.
            delta = x[:, 0] - self.mean
            new_mean = self.mean + delta / tot
            new_var = self.var * count
            delta *= delta
            delta *= count
            delta /= tot
            new_var += delta
            new_var /= tot
        else:
            b_mean, b_var = x.mean(1), x.var(1)
            delta = b_mean - self.mean
            new_mean = self.mean + delta * n / tot
            new_var = (self.var * count + b_var * n + delta * delta * count * n / tot) / tot
        if active is None:
            self.mean, self.var, self.count = new_mean, new_var, self.count + n
        else:
            a = active.reshape(-1, *extra)
            self.mean = np.where(a, new_mean, self.mean)
            self.var = np.where(a, new_var, self.var)
            self.count = np.where(active, self.count + n, self.count)

    def state_dict(self, r: int) -> dict:
        return {"mean": self.mean[r].copy(), "var": self.var[r].copy(), "count": float(self.count[r])}

    def load_state_dict(self, r: int, state: dict) -> None:
        self.mean[r], self.var[r], self.count[r] = state["mean"], state["var"], state["count"]


class ObservationNormalizer:
    """o ↦ clip((o − μ) / sqrt(σ² + ε), ±clip), statistics updated with every observation seen; clip None: none."""

    def __init__(self, runs: int, obs_dim: int, clip: float | None, enabled: bool = True, epsilon: float = 1e-8):
        self.enabled, self.clip, self.epsilon = enabled, clip, epsilon
        self.rms = RunningMeanStd(runs, (obs_dim,))

    def __call__(self, obs: np.ndarray, update: bool = True, active: np.ndarray | None = None) -> np.ndarray:
        """obs: (R, N, obs_dim) float64 raw observations → float32 normalised."""
        if not self.enabled:
            return obs.astype(np.float32)
        if update:
            self.rms.update(obs, active)
        out = obs - self.rms.mean[:, None]
        out /= np.sqrt(self.rms.var[:, None] + self.epsilon)
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        return out.astype(np.float32)


class RewardScaler:
    """Divide rewards by the running std of the discounted return (baselines' VecNormalize; ``by="return"``), or
    by the reward's own running std keeping its running mean, r ↦ (r − μ)/σ + μ (``by="reward"``: Engstrom et
    al. 2020's "rewards" normalisation); then clip to ±clip."""

    def __init__(self, runs: int, envs: int, gamma: float | np.ndarray, clip: float, enabled: bool = True,
                 epsilon: float = 1e-8, by: str = "return"):
        """gamma: one discount, or each run's as an (R, 1) array."""
        self.enabled, self.gamma, self.clip, self.epsilon, self.by = enabled, gamma, clip, epsilon, by
        self.rms = RunningMeanStd(runs)
        self.returns = np.zeros((runs, envs))

    def __call__(self, rewards: np.ndarray, done: np.ndarray, valid: np.ndarray,
                 active: np.ndarray | None = None) -> np.ndarray:
        """rewards, done, valid: (R, N); a reset row (valid=False) does not add to the return."""
        if not self.enabled:
            return rewards
        if self.by == "reward":
            # each actor's valid steps in turn (a reset row carries no reward)
            for n in range(rewards.shape[1]):
                ok = valid[:, n] if active is None else valid[:, n] & active
                self.rms.update(rewards[:, n:n + 1], ok)
            mean = self.rms.mean[:, None]
            scaled = (rewards - mean) / np.sqrt(self.rms.var[:, None] + self.epsilon) + mean
            return np.clip(scaled, -self.clip, self.clip)
        self.returns = np.where(valid, self.returns * self.gamma + rewards, self.returns)
        self.rms.update(self.returns, active)
        scaled = rewards / np.sqrt(self.rms.var[:, None] + self.epsilon)
        # an episode's discounted return restarts after it ends
        self.returns = np.where(done, 0.0, self.returns)
        return np.clip(scaled, -self.clip, self.clip)
