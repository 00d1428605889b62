"""PPO, actor-critic style (paper Algorithm 1): K epochs of minibatch Adam on each run's own surrogate.

Each run has its own objective (one of the paper's Table-1 surrogates, ``ppo_bench.rl.algorithms.ppo.objectives``) with
its own hyperparameters (adaptive β included), its own Adam moments and step-size schedule. Runs sharing
a surrogate function are evaluated in one call. The settings are ``algo.*`` (conf/algo/ppo.yaml: the paper's
Table 3) and the surrogate, the ``objective`` group; a population's runs may differ by their surrogate
(``population.objectives``) and, set per member (``RunSpec.algo_settings``: a tuner's trials), by the settings of
``PPO.member_settings``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ppo_bench.rl.engine import rng
from ppo_bench.common.errors import ConfigError
from ppo_bench.rl.algorithms.ppo.objectives import get_objective, resolve_objective
from ppo_bench.rl.engine.optim import PerRunAdam, linear_annealing
from ppo_bench.common.losses import clipped_value_loss, kl_k3, masked_mean, masked_standardize, policy_ratio
from ppo_bench.rl.engine.updates import minibatches, output_gradient
from ppo_bench.rl.engine.registry import Algorithm, register_algorithm


@register_algorithm("ppo")
class PPO(Algorithm):
    # read per run: the step size (PerRunAdam steps runs with one rate together) and the loss's coefficients
    member_settings = (*Algorithm.member_settings, "lr", "ent_coef", "vf_coef")

    @staticmethod
    def check(cfg) -> None:
        p = cfg.algo
        for key in ("epochs", "minibatch_size"):
            if not isinstance(p[key], int) or p[key] <= 0:
                raise ConfigError(f"algo.{key}={p[key]} must be a positive integer")
        batch = cfg.env.num_envs * p.num_steps
        if p.minibatch_size > batch:
            raise ConfigError(
                f"algo.minibatch_size={p.minibatch_size} is larger than the batch N·T = env.num_envs·algo.num_steps "
                f"= {cfg.env.num_envs}·{p.num_steps} = {batch}; allowed: 1..{batch}")
        for key in ("lr", "adam_eps"):
            if not p[key] > 0:
                raise ConfigError(f"algo.{key}={p[key]} must be > 0")
        for key in ("max_grad_norm", "clip_value"):
            if p[key] is not None and not (isinstance(p[key], (int, float)) and not isinstance(p[key], bool) and p[key] > 0):
                raise ConfigError(f"algo.{key}={p[key]} must be > 0 or null")
        if not p.vf_coef >= 0:
            raise ConfigError(f"algo.vf_coef={p.vf_coef} must be >= 0")
        if p.vf_lr is not None and not (isinstance(p.vf_lr, (int, float)) and not isinstance(p.vf_lr, bool) and p.vf_lr > 0):
            raise ConfigError(f"algo.vf_lr={p.vf_lr} must be > 0 or null")
        if p.clip_grad_of not in ("all", "policy"):
            raise ConfigError(f"algo.clip_grad_of={p.clip_grad_of!r} is not allowed; allowed: all, policy")
        if (p.vf_lr is not None or p.clip_grad_of == "policy") and cfg.model.arch != "separate":
            raise ConfigError("algo.vf_lr and algo.clip_grad_of=policy need a value network of its own: "
                              "model.arch=separate")
        if p.norm_adv not in ("batch", "minibatch", "none"):
            raise ConfigError(f"algo.norm_adv={p.norm_adv!r} is not allowed; allowed: batch, minibatch, none")
        if not isinstance(p.anneal_lr, bool):
            raise ConfigError(f"algo.anneal_lr={p.anneal_lr!r} must be true or false")

    @classmethod
    def settings(cls, cfg) -> list[dict]:
        """Each run's surrogate: ``population.objectives``, or the one ``objective``."""
        objectives = cfg.population.objectives
        if objectives is None:
            return [resolve_objective(cfg.objective)]
        if len(objectives) == 0:
            raise ConfigError("population.objectives is empty; give at least one {name: ...} or null")
        return [resolve_objective(o, f"population.objectives[{i}]", cfg.objective) for i, o in enumerate(objectives)]

    def __init__(self, trainer):
        self.tr = trainer
        cfg, specs = trainer.cfg, trainer.specs
        self.R, self.model, self.dist = trainer.R, trainer.model, trainer.dist
        self.K, self.M = cfg.algo.epochs, cfg.algo.minibatch_size
        separate = cfg.model.arch == "separate"
        self.opt = PerRunAdam(self.model.flat, eps=cfg.algo.adam_eps,
                              value_columns=self.model.value_columns if separate else None)
        # objective groups: runs sharing a surrogate function are evaluated in one call
        self.groups = []
        for name in dict.fromkeys(s.objective["name"] for s in specs):
            idx = torch.tensor([r for r, s in enumerate(specs) if s.objective["name"] == name])
            obj = get_objective(name)
            hp = {k: torch.tensor([[specs[r].objective[k]] for r in idx.tolist()], dtype=torch.float32)
                  for k in obj.hparams}
            self.groups.append([obj, idx, hp])

        p = cfg.algo  # the loss's settings as plain Python values (what torch.compile specialises on)
        self.need_kl = any(obj.uses_kl for obj, _, _ in self.groups)
        self.norm_adv = str(p.norm_adv)
        # per run (R,): the settings a member may have of its own (member_settings)
        self.lr, self.vf_coef, self.ent_coef = (torch.tensor(trainer.member_values(k), dtype=torch.float32)
                                                for k in ("lr", "vf_coef", "ent_coef"))
        self.entropy_bonus = bool(self.ent_coef.any())  # else the entropy is not computed at all
        self.standardize_advantages = self.norm_adv == "batch"
        self.clip_value = None if p.clip_value is None else float(p.clip_value)
        self.max_grad_norm = None if p.max_grad_norm is None else float(p.max_grad_norm)
        self.vf_lr = None if p.vf_lr is None else float(p.vf_lr)
        self.clip_policy_only = p.clip_grad_of == "policy"
        compiled = lambda f: torch.compile(f, dynamic=False, fullgraph=True) if cfg.compile else None  # noqa: E731
        self.compiled_gradient, self.compiled_diagnostics = compiled(self.minibatch_gradient), compiled(self.diagnostics)

    # ------------------------------------------------------------------ state
    def hparams_of(self, r: int) -> dict[str, float]:
        for obj, idx, hp in self.groups:
            pos = (idx == r).nonzero()
            if len(pos):
                return {k: float(v[pos[0, 0], 0]) for k, v in hp.items()}
        return {}

    def run_state(self, r: int) -> dict:
        return {"adam": self.opt.run_state(r), "hparams": self.hparams_of(r)}

    def load_run_state(self, r: int, st: dict) -> None:
        self.opt.load_run_state(r, st["adam"])
        for obj, idx, hp in self.groups:
            pos = (idx == r).nonzero()
            if len(pos):
                for k in hp:
                    hp[k][pos[0, 0], 0] = st["hparams"][k]

    # ------------------------------------------------------------------ update
    def learning_rate(self, lr: float | None = None) -> Tensor:
        """Each run's step size this iteration: ``lr`` (default each run's algo.lr), linearly annealed with
        algo.anneal_lr."""
        lr = self.lr if lr is None else torch.full((self.R,), lr)
        if not self.tr.cfg.algo.anneal_lr:
            return lr.clone()
        return linear_annealing(self.tr.iteration.float() / self.tr.n_iter, lr)

    def surrogate(self, ratio: Tensor, adv: Tensor, kl: Tensor | None) -> Tensor:
        """Each run's own objective; runs sharing a surrogate function are evaluated in one call."""
        if len(self.groups) == 1:
            obj, _, hp = self.groups[0]
            return obj(ratio, adv, kl, hp)
        out = torch.empty_like(ratio)
        for obj, idx, hp in self.groups:
            out[idx] = obj(ratio[idx], adv[idx], None if kl is None else kl[idx], hp)
        return out

    def update(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """K epochs of minibatch Adam on each run's own loss; diagnostics over the batch afterwards."""
        R, M = self.R, self.M
        B = data["obs"].shape[1]
        n_mb = B // M
        lr = self.learning_rate()
        value_lr = None if self.vf_lr is None else self.learning_rate(self.vf_lr)
        losses = torch.zeros(3, R)  # policy, value, entropy: means over minibatches
        grad_norm = torch.zeros(R)
        start = self.tr.iteration * self.K
        for epoch in range(self.K):
            perm = rng.permutations(self.tr.seeds, rng.PERMUTATION, start + epoch, B)
            shuffled = {k: minibatches(v, perm, M) for k, v in data.items()}
            for j in range(n_mb):
                mb = {k: v[j] for k, v in shuffled.items()}
                policy_loss, value_loss, norms = self.minibatch_step(mb, lr, want_norm=j == n_mb - 1, value_lr=value_lr)
                losses[:2] += torch.stack([policy_loss, value_loss])
                if j == n_mb - 1:
                    grad_norm += norms
        stats = (self.compiled_diagnostics or self.diagnostics)(data)
        stats["policy"], stats["value"] = losses[0] / (self.K * n_mb), losses[1] / (self.K * n_mb)
        stats["grad_norm"] = grad_norm / self.K  # at each epoch's last minibatch, before clipping
        stats["lr"] = lr
        self.adapt(stats["kl"])
        return stats

    def minibatch_loss(self, mb: dict[str, Tensor], params: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each run's loss on one minibatch from the network's outputs, with its policy and value parts
        ((R,) each, masked means over the minibatch's valid samples)."""
        ratio = policy_ratio(self.dist.log_prob(params, mb["actions"]), mb["logp"])
        kl = self.dist.kl(mb["params"], params) if self.need_kl else None
        w = mb["valid"]
        adv = mb["adv"] if self.norm_adv != "minibatch" else masked_standardize(mb["adv"], w)
        policy_loss = -masked_mean(self.surrogate(ratio, adv, kl), w, dim=1)
        value_loss = masked_mean(clipped_value_loss(value, mb["ret"], mb["values"], self.clip_value), w, dim=1)
        # paper eq. (9): maximise L^CLIP − c1 L^VF + c2 S  ⇔  minimise the negation
        loss = policy_loss + self.vf_coef * value_loss
        if self.entropy_bonus:
            entropy = masked_mean(self.dist.entropy(params), w, dim=1)
            loss = loss - self.ent_coef * entropy
        return loss, policy_loss, value_loss

    def minibatch_step(self, mb: dict[str, Tensor], lr: Tensor, want_norm: bool,
                       value_lr: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """One Adam step of every active run on its own loss over minibatch mb: (policy loss, value loss,
        gradient norms before clipping when want_norm or clipping asks for them). A run whose loss is not
        finite is stopped (``fail``) and takes no step."""
        active = self.tr.active
        gradient = self.compiled_gradient or self.minibatch_gradient
        grad, policy_loss, value_loss, finite = gradient(mb, active)
        if not bool((finite | ~active).all()):
            self.tr.fail((active & ~finite).nonzero().flatten().tolist(), "non-finite loss")
            active = self.tr.active
        self.model.flat.grad = grad
        norms = self.opt.step(lr, active, self.max_grad_norm, want_norm, value_lr, self.clip_policy_only)
        return policy_loss, value_loss, norms

    def minibatch_gradient(self, mb: dict[str, Tensor], active: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """∂/∂flat of Σ_r loss_r over the active runs with a finite loss (run r's parameters get ∇ loss_r),
        with each run's policy loss, value loss and whether its loss is finite.

        The network's forward and backward are the model's taped ones (written out, no autograd); only the
        loss's gradient w.r.t. the network's outputs is automatic (``output_gradient``). All of it is tensor
        ops, so ``compile=true`` hands this function to torch.compile as one graph."""
        params, value, tape = self.model.forward_taped(mb["obs"])

        def total_loss(params: Tensor, value: Tensor):
            loss, policy_loss, value_loss = self.minibatch_loss(mb, params, value)
            finite = torch.isfinite(loss)
            return torch.where(active & finite, loss, 0.0).sum(), (policy_loss, value_loss, finite)

        (g_params, g_value), (policy_loss, value_loss, finite) = output_gradient(total_loss, params, value)
        return self.model.backward_taped(tape, g_params, g_value), policy_loss, value_loss, finite

    @torch.no_grad()
    def diagnostics(self, data: dict[str, Tensor]) -> dict[str, Tensor]:
        """How far the update moved each run's policy, over the whole batch (R,) each.

        ``kl`` = Ê[KL[π_old(·|s), π_new(·|s)]] is also the d of the adaptive-β rule.
        """
        params, _ = self.model(data["obs"])
        w = data["valid"]
        logp = self.dist.log_prob(params, data["actions"])
        ratio = policy_ratio(logp, data["logp"])
        eps = torch.full((self.R, 1), float("nan"))
        for obj, idx, hp in self.groups:
            if "eps" in hp:
                eps[idx] = hp["eps"]
        mean = lambda x: masked_mean(x, w, dim=1)  # noqa: E731 — per run
        return {
            "kl": mean(self.dist.kl(data["params"], params)),
            "approx_kl": mean(kl_k3(data["logp"], logp)),  # KL[π_old‖π_new] sampled, against the exact "kl"
            "clipfrac": mean(((ratio - 1).abs() > eps).float()),
            "ratio_mean": mean(ratio),
            "ratio_max": torch.where(w > 0, ratio, 0.0).amax(1),
            "entropy": mean(self.dist.entropy(params)),
        }

    def adapt(self, mean_kl: Tensor) -> None:
        """Objectives with an after-update rule (adaptive β) update their per-run hyperparameters."""
        active = self.tr.active
        for group in self.groups:
            obj, idx, hp = group
            if obj.after_update is not None:
                new = obj.after_update(hp, mean_kl[idx].view(-1, 1))
                keep = active[idx].view(-1, 1)
                group[2] = {k: torch.where(keep, new[k], hp[k]) for k in hp}

    # ------------------------------------------------------------------ logging
    def log_values(self, stats: dict[str, Tensor], r: int) -> dict[str, Tensor | float]:
        hp = self.hparams_of(r)
        values = {
            "losses/policy": stats["policy"][r], "losses/value": stats["value"][r],
            "losses/entropy": stats["entropy"][r], "stats/approx_kl": stats["approx_kl"][r],
            "stats/kl": stats["kl"][r],
            "stats/ratio_mean": stats["ratio_mean"][r], "stats/ratio_max": stats["ratio_max"][r],
            "stats/grad_norm": stats["grad_norm"][r], "charts/learning_rate": stats["lr"][r],
        }
        if "eps" in hp:
            values["stats/clipfrac"] = stats["clipfrac"][r]
        if "beta" in hp:
            values["stats/beta"] = hp["beta"]
        return values
