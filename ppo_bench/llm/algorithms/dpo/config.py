"""The DPO config group (``conf_llm/algo/dpo.yaml``): its structured schema and the checks a schema cannot express.

Defaults follow TRL's ``DPOConfig`` where it has the option (β = 0.1, learning rate 1e-6, sigmoid loss);
the variants' own knobs are documented in docs/llm.md, "DPO" (β⁺ = 0.6, β⁻ = 0.2; α ∈ [0.1, 0.5]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.algorithms.dpo.loss import DPO_LOSSES
from ppo_bench.llm.harness.config import check_optimizer, check_preference_data, int_at_least, non_negative, positive


@dataclass
class DPOConfig:
    name: str = "dpo"
    loss: str = "sigmoid"  # sigmoid | ipo | cdpo | reference_free | asymmetric | dpop | dpo_sft  (loss.DPO_LOSSES)
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

    @staticmethod
    def check(a) -> None:
        """The checks a schema cannot express: one ConfigError naming the option and what it allows."""
        if a.loss not in DPO_LOSSES:
            raise ConfigError(f"algo.loss={a.loss!r} is not one of: {', '.join(DPO_LOSSES)}")
        for key in ("beta", "beta_chosen", "beta_rejected"):
            positive(f"algo.{key}", a[key])
        if not (0 <= a.label_smoothing < 0.5):
            raise ConfigError(f"algo.label_smoothing={a.label_smoothing} must lie in [0, 0.5)")
        for key in ("dpop_lambda", "sft_alpha"):
            non_negative(f"algo.{key}", a[key])
        check_optimizer(a)
        for key in ("batch_size", "micro_batch_size"):
            int_at_least(f"algo.{key}", a[key], 1)
        check_preference_data(a)
