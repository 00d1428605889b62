"""The cross-entropy method (noisy CEM, Szita & Lőrincz 2006) over the policy network's parameters.

Each run keeps a diagonal Gaussian N(μ, σ²) over its flat parameters (μ is the run's network, so checkpoints,
evaluation and export see the mean policy). Each iteration every actor n of the run plays candidate
θ_n = μ + σ ⊙ ε_n (ε from the run's own counter-based stream): the candidates live on the actor axis, N of
them per run, the runs on the run axis. Episodes start with the iteration (``reset_each_iteration``) and a
candidate's score is the mean return of the episodes it finished; the best ⌈ρN⌉ (the elite) refit
μ ← mean(elite), σ² ← var(elite) + Z_t, with the added noise Z_t = extra_std² · max(1 − t/decay, 0), decreasing
linearly to 0 (Szita & Lőrincz 2006, §3, the decreasing noise schedule; modular_rl's cem decays it so too). Settings: conf/algo/cem.yaml.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ppo_bench.rl.engine import rng
from ppo_bench.common.errors import ConfigError
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm


def elite_refit(candidates: Tensor, scores: Tensor, n_elite: int, extra_var: Tensor) -> tuple[Tensor, Tensor]:
    # Szita & Lőrincz 2006, eq. (2)-(3) with noise: μ = mean of the elite, σ² = their variance + Z_t; per run
    elite = torch.topk(scores, n_elite, dim=1, sorted=True).indices  # (R, n_elite)
    chosen = candidates.gather(1, elite.unsqueeze(-1).expand(-1, -1, candidates.shape[-1]))
    mean = chosen.mean(1)
    var = chosen.var(1, unbiased=False) + extra_var.view(-1, 1)
    return mean, var.sqrt()


def added_noise_variance(iteration: Tensor, extra_std: float, decay_iterations: float) -> Tensor:
    # Szita & Lőrincz 2006 §3: the added variance Z_t decreasing linearly to 0, here from extra_std² at t = 0
    return extra_std ** 2 * torch.clamp(1 - iteration.double() / decay_iterations, min=0.0)


@register_algorithm("cem")
class CEM(Algorithm):
    standardize_advantages = False
    reset_each_iteration = True

    @staticmethod
    def check(cfg) -> None:
        a = cfg.algo
        if not 0 < a.elite_frac <= 1:
            raise ConfigError(f"algo.elite_frac={a.elite_frac} must lie in (0, 1]")
        for key in ("initial_std", "extra_decay_iterations"):
            if not a[key] > 0:
                raise ConfigError(f"algo.{key}={a[key]} must be > 0")
        if not a.extra_std >= 0:
            raise ConfigError(f"algo.extra_std={a.extra_std} must be >= 0")
        if cfg.env.num_envs < 2:
            raise ConfigError(f"algo=cem plays one candidate per actor: env.num_envs={cfg.env.num_envs} must be >= 2")

    def __init__(self, trainer):
        self.tr, self.model = trainer, trainer.model
        a = trainer.cfg.algo
        self.n_elite = max(1, math.ceil(a.elite_frac * trainer.N - 1e-9))
        self.extra_std, self.decay = float(a.extra_std), float(a.extra_decay_iterations)
        self.std = torch.full_like(self.model.flat.detach(), float(a.initial_std))
        self.candidates: Tensor | None = None

    def hparams_of(self, r: int) -> dict[str, float]:
        return {}

    def run_state(self, r: int) -> dict:
        return {"cem_std": self.std[r].clone(), "hparams": {}}

    def load_run_state(self, r: int, st: dict) -> None:
        self.std[r] = st["cem_std"]

    def sample_candidates(self) -> Tensor:
        """(R, N, P): θ_n = μ + σ ⊙ ε_n, ε a function of (run seed, iteration, actor, parameter) only."""
        R, N, P = self.tr.R, self.tr.N, self.model.flat.shape[1]
        counter = (self.tr.iteration.view(R, 1, 1) * N + torch.arange(N).view(1, N, 1)) * P + torch.arange(P)
        eps = rng.normal(self.tr.seeds.view(R, 1, 1), rng.CEM_CANDIDATES, counter)
        return self.model.flat.detach().unsqueeze(1) + self.std.unsqueeze(1) * eps

    @torch.no_grad()
    def acting_policy(self):
        """obs (R, N, in) ↦ distribution parameters (R, N, P) with actor n acting by candidate n (NumPy)."""
        self.candidates = self.sample_candidates()
        m, R, N = self.model, self.tr.R, self.tr.N
        v = lambda name: m.layout.view(self.candidates.reshape(R * N, -1), name).reshape(R, N, *m.layout.slots[name][1]).numpy()  # noqa: E731
        layers = [(v(w), v(b)) for w, b in m.trunk + m.pi]
        log_std = v(m.log_std) if m.gaussian else None
        tanh = m.activation == "tanh"

        def forward(obs: np.ndarray) -> np.ndarray:
            h = obs[:, :, None, :].astype(np.float32)
            for k, (W, b) in enumerate(layers):
                h = np.matmul(h, W) + b
                if k < len(layers) - 1:
                    h = np.tanh(h) if tanh else np.maximum(h, 0)
            h = h[:, :, 0, :]
            if log_std is not None:
                h = np.concatenate([h, log_std[:, :, 0, :]], -1)
            return h

        return forward

    @torch.no_grad()
    def update(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        count = torch.from_numpy(self.tr.actor_episodes)
        scores = torch.from_numpy(self.tr.actor_returns) / count.clamp(min=1)
        scores = torch.where(count > 0, scores, -math.inf)  # a candidate that finished no episode is never elite
        extra = added_noise_variance(self.tr.iteration, self.extra_std, self.decay).float()
        mean, std = elite_refit(self.candidates, scores.float(), self.n_elite, extra)
        active = self.tr.active.view(-1, 1)
        self.model.flat.copy_(torch.where(active, mean, self.model.flat))
        self.std = torch.where(active, std, self.std)
        elite_scores = torch.topk(scores, self.n_elite, dim=1).values
        return {"elite_return": elite_scores.mean(1).float(), "candidate_return": scores.clamp(min=-1e30).mean(1).float(),
                "param_std": self.std.mean(1), "added_noise_std": extra.sqrt()}

    def log_values(self, stats: dict[str, Tensor], r: int) -> dict[str, Tensor | float]:
        return {"stats/elite_return": stats["elite_return"][r], "stats/candidate_return": stats["candidate_return"][r],
                "stats/param_std": stats["param_std"][r], "stats/added_noise_std": stats["added_noise_std"][r]}
