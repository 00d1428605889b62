"""The reward-model config group (``conf_llm/algo/reward_model.yaml``): its structured schema and its checks.

The preference-data options are the DPO path's (docs/llm.md, "DPO"); the learning rate is TRL's
``RewardConfig`` default for full fine-tuning scaled to short CPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness.config import check_optimizer, check_preference_data, int_at_least


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

    @staticmethod
    def check(a) -> None:
        """The checks a schema cannot express: one ConfigError naming the option and what it allows."""
        check_optimizer(a)
        for key in ("batch_size", "micro_batch_size"):
            int_at_least(f"algo.{key}", a[key], 1)
        if not (0 < a.eval_fraction < 1):
            raise ConfigError(f"algo.eval_fraction={a.eval_fraction} must lie in (0, 1)")
        check_preference_data(a)
