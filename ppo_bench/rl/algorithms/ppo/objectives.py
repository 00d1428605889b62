"""The surrogate objectives of the PPO paper, Table 1 — one small function each, one registry.

Every surrogate has the same signature ``(ratio, adv, kl, **hparams) -> per-sample objective``
(to be *maximised*), where ``ratio`` = π_θ(a|s) / π_θold(a|s), ``adv`` the advantage estimates
and ``kl`` the exact KL[π_θold(·|s), π_θ(·|s)] per state (``None`` unless the objective is registered
with ``uses_kl=True``), all shaped (R, B): a run axis R and a sample axis B. Hyperparameters arrive as (R, 1) tensors, one value per run, so one call serves a
population whose members use different ε or β.

Adding an objective = one decorated function (here, or in a module of one's own named in ``extensions``) + one
YAML file in a ``conf/objective/`` folder.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ppo_bench.common import losses
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.paths import CONF_DIR


@dataclass(frozen=True)
class Objective:
    name: str
    surrogate: Callable[..., Tensor]
    # hyperparameter name -> check(value) returning an error text or None
    hparams: dict[str, Callable[[float], Optional[str]]] = field(default_factory=dict)
    # called after each policy update with (hparams, mean KL) -> updated hparams (adaptive β)
    after_update: Optional[Callable[..., dict[str, Tensor]]] = None
    surrogate_args: tuple[str, ...] = ()  # the hyperparameters the surrogate itself takes
    uses_kl: bool = False  # the trainer computes KL[π_old, π_θ] per state only when some objective reads it

    def __call__(self, ratio: Tensor, adv: Tensor, kl: Tensor, hp: dict[str, Tensor]) -> Tensor:
        return self.surrogate(ratio, adv, kl, **{k: hp[k] for k in self.surrogate_args})


OBJECTIVES: dict[str, Objective] = {}


def objective(name: str, after_update=None, uses_kl: bool = False, **hparams: Callable[[float], Optional[str]]):
    """Register a surrogate under ``name``; keyword args name its hyperparameters and their checks."""

    def register(fn):
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        args = tuple(inspect.signature(fn).parameters)[3:]
        unknown = set(args) - set(hparams)
        if unknown:
            raise ValueError(f"objective {name!r}: surrogate arguments {sorted(unknown)} have no check")
        OBJECTIVES[name] = Objective(name, fn, dict(hparams), after_update, args, uses_kl)
        return fn

    return register


def in_open_unit_interval(x: float) -> Optional[str]:
    return None if 0.0 < x < 1.0 else "must lie in the open interval (0, 1)"


def positive(x: float) -> Optional[str]:
    return None if x > 0.0 else "must be > 0"


def non_negative(x: float) -> Optional[str]:
    return None if x >= 0.0 else "must be >= 0"


def adapt_beta(hp: dict[str, Tensor], mean_kl: Tensor) -> dict[str, Tensor]:
    # paper §4: d < d_targ/1.5 → β ← β/2;  d > 1.5·d_targ → β ← 2β
    beta, d_targ = hp["beta"], hp["kl_target"]
    beta = torch.where(mean_kl < d_targ / 1.5, beta / 2, beta)
    beta = torch.where(mean_kl > d_targ * 1.5, beta * 2, beta)
    return {**hp, "beta": beta}


@objective("none")
def conservative_surrogate(ratio: Tensor, adv: Tensor, kl: Tensor) -> Tensor:
    # paper eq. (6): L^CPI = E[r_t Â_t], no clipping or penalty (the toolkit's formula)
    return losses.conservative_surrogate(ratio, adv)


@objective("clip", eps=in_open_unit_interval)
def clipped_surrogate(ratio: Tensor, adv: Tensor, kl: Tensor, eps: Tensor) -> Tensor:
    # paper eq. (7): L^CLIP = E[min(r_t Â_t, clip(r_t, 1−ε, 1+ε) Â_t)], the toolkit's formula with one ε
    return losses.clipped_surrogate(ratio, adv, eps, eps)


@objective("kl_adaptive", after_update=adapt_beta, uses_kl=True, beta=positive, kl_target=positive)
@objective("kl_fixed", uses_kl=True, beta=non_negative)
def kl_penalized_surrogate(ratio: Tensor, adv: Tensor, kl: Tensor, beta: Tensor) -> Tensor:
    # paper eq. (8): L^KLPEN = E[r_t Â_t − β KL[π_θold(·|s_t), π_θ(·|s_t)]]
    return ratio * adv - beta * kl


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"objective {name!r} is unknown; allowed: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name]


def objective_defaults(name: str, composed: Any = None) -> dict:
    """The default hyperparameters of objective ``name``: its YAML file in conf/objective/, or for an objective
    of one's own whose YAML is on another search path, the composed ``objective`` group when it is that
    objective (``objective=<name>``); else none (its settings are then all given)."""
    get_objective(name)
    path = CONF_DIR / "objective" / f"{name}.yaml"
    if path.exists():
        return dict(OmegaConf.to_container(OmegaConf.load(path)))
    if composed is not None and composed.get("name") == name:
        return dict(OmegaConf.to_container(composed) if isinstance(composed, DictConfig) else composed)
    return {"name": name}


def resolve_objective(spec: Any, where: str = "objective", composed: Any = None) -> dict:
    """Validate one objective setting {name, **hparams}; fill hparams missing from its defaults
    (``objective_defaults``)."""
    spec = OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else dict(spec)
    name = spec.get("name")
    if name not in OBJECTIVES:
        raise ConfigError(f"{where}.name={name!r} is unknown; allowed: {', '.join(sorted(OBJECTIVES))}")
    obj = OBJECTIVES[name]
    out = {**objective_defaults(name, composed), **spec}
    for key, value in out.items():
        if key == "name":
            continue
        if key not in obj.hparams:
            allowed = ", ".join(obj.hparams) or "none"
            raise ConfigError(f"{where}.{key} is not an option of objective {name!r}; its options: {allowed}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}.{key}={value!r} must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where}.{key}={value} must be a finite number")
        problem = obj.hparams[key](float(value))
        if problem:
            raise ConfigError(f"{where}.{key}={value} {problem}")
        out[key] = float(value)
    missing = set(obj.hparams) - set(out)
    if missing:
        raise ConfigError(f"{where}: objective {name!r} needs {', '.join(sorted(missing))}")
    return out

