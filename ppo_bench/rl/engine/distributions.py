"""Action distributions with a run axis: diagonal Gaussian (Box) and categorical (Discrete).

A policy head returns distribution parameters shaped (R, B, P): for the Gaussian the mean (P = A)
and a state-independent log-std broadcast from (R, 1, A); for the categorical the logits (P = K).
Sampling takes pre-drawn noise, so randomness is owned by each run's counter-based stream
(``ppo_bench.rl.engine.rng``), not by a global generator.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor

_LOG_2PI = math.log(2 * math.pi)

# (t, distribution parameters at step t (R, N, P)) ↦ (action, log-prob), NumPy in and out (rollouts act in NumPy)
RolloutSampler = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


class ActionDistribution(Protocol):
    def sample(self, params: Tensor, noise: Tensor) -> Tensor: ...
    def sample_with_log_prob(self, params: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]: ...
    def rollout_sampler(self, noise: Tensor) -> RolloutSampler: ...
    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor: ...
    def entropy(self, params: Tensor) -> Tensor: ...
    def kl(self, old: Tensor, new: Tensor) -> Tensor: ...
    def fisher_vector(self, params: Tensor, u: Tensor) -> Tensor: ...


class DiagGaussian:
    """params = concat(mean, log_std) on the last axis: (R, B, 2A)."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self.noise_dim = action_dim

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        return params[..., : self.action_dim], params[..., self.action_dim :]

    def sample(self, params: Tensor, noise: Tensor) -> Tensor:
        mean, log_std = self.split(params)
        return mean + log_std.exp() * noise

    def sample_with_log_prob(self, params: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """The action and its log-prob, read off the standard-normal draw: z = (a − μ)/σ = noise."""
        mean, log_std = self.split(params)
        logp = (-0.5 * noise.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)
        return mean + log_std.exp() * noise, logp

    def rollout_sampler(self, noise: Tensor) -> RolloutSampler:
        """sample_with_log_prob(params_t, noise[t]) for a rollout's noise (T, R, N, A), as (t, params_t) ↦
        (action, log-prob) on the acting network's NumPy arrays. The log-std does not depend on the
        observation and the parameters do not change during a rollout, so σ·noise and the log-probs of all
        T steps are computed in one go at the first step (the same elementwise arithmetic, in torch); a
        step is then one float32 addition."""
        pre: list[np.ndarray] = []

        def sample(t: int, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean, log_std = self.split(params)
            if not pre:
                log_std = torch.from_numpy(np.ascontiguousarray(log_std))
                pre.extend([(log_std.exp() * noise).numpy(),
                            (-0.5 * noise.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1).numpy()])
            return mean + pre[0][t], pre[1][t]

        return sample

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        mean, log_std = self.split(params)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        _, log_std = self.split(params)
        return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        # closed form KL[N(μ0, σ0²) ‖ N(μ1, σ1²)] summed over independent action dimensions
        mu0, ls0 = self.split(old)
        mu1, ls1 = self.split(new)
        var_ratio = torch.exp(2 * (ls0 - ls1))
        t = (mu0 - mu1) * torch.exp(-ls1)
        return 0.5 * (var_ratio + t.pow(2) - 1.0 - 2 * (ls0 - ls1)).sum(-1)

    def fisher_vector(self, params: Tensor, u: Tensor) -> Tensor:
        """M·u with M the Hessian of KL[π(params) ‖ π(p)] in p at p = params (the Fisher information of the
        distribution in its parameters): 1/σ² on the mean, 2 on the log-std, no cross terms."""
        _, log_std = self.split(params)
        u_mean, u_log_std = self.split(u)
        return torch.cat([u_mean * torch.exp(-2 * log_std), 2 * u_log_std], -1)


class Categorical:
    """params = unnormalised logits (R, B, K); noise is one uniform number per sample."""

    def __init__(self, n: int):
        self.n = n
        self.noise_dim = 1

    def sample(self, params: Tensor, noise: Tensor) -> Tensor:
        # inverse-CDF sampling with the run's own uniform draw
        cdf = torch.softmax(params, -1).cumsum(-1)
        idx = torch.searchsorted(cdf, noise.contiguous(), right=True)
        return idx.clamp_(max=self.n - 1).squeeze(-1)

    def sample_with_log_prob(self, params: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        action = self.sample(params, noise)
        return action, self.log_prob(params, action)

    def rollout_sampler(self, noise: Tensor) -> RolloutSampler:
        """(t, params_t) ↦ sample_with_log_prob(params_t, noise[t]) on the acting network's NumPy arrays."""

        def sample(t: int, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            action, logp = self.sample_with_log_prob(torch.from_numpy(params), noise[t])
            return action.numpy(), logp.numpy()

        return sample

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        logp = torch.log_softmax(params, -1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, params: Tensor) -> Tensor:
        logp = torch.log_softmax(params, -1)
        return -(logp.exp() * logp).sum(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        # exact KL[p_old ‖ p_new] = Σ_k p_old(k) (log p_old(k) − log p_new(k))
        lp0 = torch.log_softmax(old, -1)
        lp1 = torch.log_softmax(new, -1)
        return (lp0.exp() * (lp0 - lp1)).sum(-1)

    def fisher_vector(self, params: Tensor, u: Tensor) -> Tensor:
        """M·u with M = diag(p) − p pᵀ, the Hessian of KL[p ‖ softmax(z)] in the logits z at z = params."""
        prob = torch.softmax(params, -1)
        return prob * u - prob * (prob * u).sum(-1, keepdim=True)
