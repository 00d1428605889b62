"""The KTO config group (``conf_llm/algo/kto.yaml``): its structured schema and the checks Hydra cannot express.

Defaults follow TRL's ``KTOConfig`` (β = 0.1, λ_D = λ_U = 1) and the DPO path (learning rate 1e-6); the
preference-data options are the DPO path's (docs/llm.md, "DPO"): each pair gives one desirable and one
undesirable example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError


@dataclass
class KTOConfig:
    name: str = "kto"
    beta: float = 0.1  # β in σ(β (r − z0))
    desirable_weight: float = 1.0  # λ_D; with n_D desirable and n_U undesirable examples, λ_D n_D / (λ_U n_U) in [1, 4/3] (KTO eq. 8)
    undesirable_weight: float = 1.0  # λ_U
    steps: int = 100  # optimizer steps
    batch_size: int = 16  # examples per step (desirable and undesirable mixed; a pair gives one of each)
    micro_batch_size: int = 16  # examples per forward/backward
    lr: float = 1.0e-6  # as algo=dpo (TRL's default)
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | linear
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: Optional[float] = 1.0
    # preference data, as algo=dpo reads or builds it; every pair is split into a desirable and an undesirable example
    data_file: Optional[str] = None
    num_prompts: int = 64
    num_samples: int = 8
    pairs_per_prompt: int = 1
    temperature: float = 1.0
    max_completion_length: int = 32
    answer_template: str = "{answer}"
    run_tag: str = "${.name}_beta${.beta}_lr${.lr}"  # the run folder's middle part


def validate_kto_algo(a) -> None:
    """The checks of ``algo=kto``: one ConfigError naming the option and the allowed values."""
    for key in ("beta", "desirable_weight", "undesirable_weight", "lr", "temperature"):
        v = a[key]
        if v is None or not (math.isfinite(v) and v > 0):
            raise ConfigError(f"algo.{key}={v} must be > 0")
    for key, low in (("steps", 1), ("batch_size", 1), ("micro_batch_size", 1), ("num_prompts", 1), ("num_samples", 2),
                     ("pairs_per_prompt", 1), ("max_completion_length", 1), ("warmup_steps", 0)):
        if not isinstance(a[key], int) or a[key] < low:
            raise ConfigError(f"algo.{key}={a[key]} must be an integer >= {low}")
    if not (math.isfinite(a.weight_decay) and a.weight_decay >= 0):
        raise ConfigError(f"algo.weight_decay={a.weight_decay} must be >= 0")
    if a.max_grad_norm is not None and not (math.isfinite(a.max_grad_norm) and a.max_grad_norm > 0):
        raise ConfigError(f"algo.max_grad_norm={a.max_grad_norm} must be > 0 or null")
    if a.lr_schedule not in ("constant", "linear"):
        raise ConfigError(f"algo.lr_schedule={a.lr_schedule!r} is not one of: constant, linear")
    if "{answer}" not in a.answer_template:
        raise ConfigError(f"algo.answer_template={a.answer_template!r} must contain {{answer}}")
