"""The KTO config group (``conf_llm/algo/kto.yaml``): its structured schema and the checks a schema cannot express.

Defaults follow TRL's ``KTOConfig`` (β = 0.1, λ_D = λ_U = 1) and the DPO path (learning rate 1e-6); the
preference-data options are the DPO path's (docs/llm.md, "DPO"): each pair gives one desirable and one
undesirable example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.llm.harness.config import check_optimizer, check_preference_data, int_at_least, positive


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

    @staticmethod
    def check(a) -> None:
        """The checks a schema cannot express: one ConfigError naming the option and what it allows."""
        for key in ("beta", "desirable_weight", "undesirable_weight"):
            positive(f"algo.{key}", a[key])
        check_optimizer(a)
        for key in ("batch_size", "micro_batch_size"):
            int_at_least(f"algo.{key}", a[key], 1)
        check_preference_data(a)
