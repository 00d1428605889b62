"""The DPO config group (``conf_llm/algo/dpo.yaml``): its structured schema and the checks Hydra cannot express.

Defaults follow TRL's ``DPOConfig`` where it has the option (β = 0.1, learning rate 1e-6, sigmoid loss);
the variants' own knobs are documented in docs/llm.md, "DPO" (β⁺ = 0.6, β⁻ = 0.2; α ∈ [0.1, 0.5]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError


@dataclass
class DPOConfig:
    name: str = "dpo"
    loss: str = "sigmoid"  # sigmoid | ipo | cdpo | reference_free | asymmetric | dpop | dpo_sft  (dpo.DPO_LOSSES)
    beta: float = 0.1  # β, the strength of the implicit KL constraint (TRL's default)
    label_smoothing: float = 0.1  # cdpo: ε, the assumed share of flipped preference labels, in [0, 0.5)
    beta_chosen: float = 0.6  # asymmetric: β⁺ on the chosen log-ratio, > β⁻
    beta_rejected: float = 0.2  # asymmetric: β⁻ on the rejected log-ratio
    dpop_lambda: float = 1.0  # dpop: weight of max(0, −r̂(y⁺|x))
    sft_alpha: float = 0.2  # dpo_sft: α in L_DPO + α·(−log π(y⁺|x)); 0.1–0.5 keeps the SFT term from dominating
    steps: int = 100  # optimizer steps
    batch_size: int = 8  # preference pairs per optimizer step
    micro_batch_size: int = 8  # pairs per forward/backward (2× as many rows: chosen and rejected together)
    lr: float = 1.0e-6  # TRL's default
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | linear
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: Optional[float] = 1.0
    # preference data: a JSONL file of {"prompt", "chosen", "rejected"}, or pairs built from the task
    data_file: Optional[str] = None  # null = sample the policy on the task's training prompts and pair by reward
    num_prompts: int = 64  # task pairs: training prompts sampled
    num_samples: int = 8  # task pairs: completions sampled per prompt
    pairs_per_prompt: int = 1  # task pairs: at most this many (chosen, rejected) pairs per prompt
    temperature: float = 1.0  # task pairs: sampling temperature
    max_completion_length: int = 32  # task pairs: tokens per sampled completion
    answer_template: str = "{answer}"  # task pairs: the chosen text when no sample was correct (the fallback)
    run_tag: str = "${.name}_${.loss}_beta${.beta}_lr${.lr}"  # the run folder's middle part


def _fail(key: str, value, need: str) -> None:
    raise ConfigError(f"{key}={value} {need}")


def validate_dpo_algo(a) -> None:
    """The checks of ``algo=dpo``: one ConfigError naming the option and the allowed values."""
    from ppo_bench.llm.dpo import DPO_LOSSES

    if a.loss not in DPO_LOSSES:
        raise ConfigError(f"algo.loss={a.loss!r} is not one of: {', '.join(DPO_LOSSES)}")
    for key in ("beta", "beta_chosen", "beta_rejected", "lr"):
        v = a[key]
        if v is None or not (math.isfinite(v) and v > 0):
            _fail(f"algo.{key}", v, "must be > 0")
    if not (0 <= a.label_smoothing < 0.5):
        _fail("algo.label_smoothing", a.label_smoothing, "must lie in [0, 0.5)")
    for key in ("dpop_lambda", "sft_alpha", "weight_decay"):
        if not (math.isfinite(a[key]) and a[key] >= 0):
            _fail(f"algo.{key}", a[key], "must be >= 0")
    for key, low in (("steps", 1), ("batch_size", 1), ("micro_batch_size", 1), ("num_prompts", 1), ("num_samples", 2),
                     ("pairs_per_prompt", 1), ("max_completion_length", 1), ("warmup_steps", 0)):
        if not isinstance(a[key], int) or a[key] < low:
            _fail(f"algo.{key}", a[key], f"must be an integer >= {low}")
    if not (math.isfinite(a.temperature) and a.temperature > 0):
        _fail("algo.temperature", a.temperature, "must be > 0")
    if a.max_grad_norm is not None and not (math.isfinite(a.max_grad_norm) and a.max_grad_norm > 0):
        _fail("algo.max_grad_norm", a.max_grad_norm, "must be > 0 or null")
    if a.lr_schedule not in ("constant", "linear"):
        raise ConfigError(f"algo.lr_schedule={a.lr_schedule!r} is not one of: constant, linear")
    if "{answer}" not in a.answer_template:
        _fail("algo.answer_template", repr(a.answer_template), "must contain {answer}")
