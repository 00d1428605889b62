"""The reward-model config group (``conf_llm/algo/reward_model.yaml``): its structured schema and its checks.

The preference-data options are the DPO path's (docs/llm.md, "DPO"); the learning rate is TRL's
``RewardConfig`` default for full fine-tuning scaled to short CPU runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError


@dataclass
class RewardModelConfig:
    name: str = "reward_model"
    steps: int = 100  # optimizer steps
    batch_size: int = 8  # preference pairs per step
    micro_batch_size: int = 8  # pairs per forward/backward (2x rows: chosen and rejected together)
    eval_fraction: float = 0.2  # share of the pairs held out for the pair accuracy
    lr: float = 1.0e-5
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | linear
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: Optional[float] = 1.0
    # preference data, as algo=dpo reads or builds it
    data_file: Optional[str] = None
    num_prompts: int = 64
    num_samples: int = 8
    pairs_per_prompt: int = 1
    temperature: float = 1.0
    max_completion_length: int = 32
    answer_template: str = "{answer}"
    run_tag: str = "${.name}_lr${.lr}"


def validate_reward_model_algo(a) -> None:
    for key, low in (("steps", 1), ("batch_size", 1), ("micro_batch_size", 1), ("num_prompts", 1), ("num_samples", 2),
                     ("pairs_per_prompt", 1), ("max_completion_length", 1), ("warmup_steps", 0)):
        if not isinstance(a[key], int) or a[key] < low:
            raise ConfigError(f"algo.{key}={a[key]} must be an integer >= {low}")
    if not (0 < a.eval_fraction < 1):
        raise ConfigError(f"algo.eval_fraction={a.eval_fraction} must lie in (0, 1)")
    for key in ("lr", "temperature"):
        if a[key] is None or not (math.isfinite(a[key]) and a[key] > 0):
            raise ConfigError(f"algo.{key}={a[key]} must be > 0")
    if not (math.isfinite(a.weight_decay) and a.weight_decay >= 0):
        raise ConfigError(f"algo.weight_decay={a.weight_decay} must be >= 0")
    if a.max_grad_norm is not None and not (math.isfinite(a.max_grad_norm) and a.max_grad_norm > 0):
        raise ConfigError(f"algo.max_grad_norm={a.max_grad_norm} must be > 0 or null")
    if a.lr_schedule not in ("constant", "linear"):
        raise ConfigError(f"algo.lr_schedule={a.lr_schedule!r} is not one of: constant, linear")
    if "{answer}" not in a.answer_template:
        raise ConfigError(f"algo.answer_template={a.answer_template!r} must contain {{answer}}")
