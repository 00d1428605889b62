"""GRPO's config group (``conf_llm/algo/grpo.yaml``): its structured schema and the checks a schema cannot express.

Defaults follow DeepSeekMath (per-sequence mean, group std, ε = 0.2); where TRL's ``GRPOConfig`` differs the comment
says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness.config import check_optimizer, choice, int_at_least, positive

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")  # loss.NORMALISATIONS
REWARD_SCALINGS = ("group", "batch", "none")
TRUNCATED = ("score", "zero", "mask")


@dataclass
class GRPOConfig:
    name: str = "grpo"
    steps: int = 100  # generation rounds (one policy update per round and inner iteration)
    prompts_per_step: int = 4  # distinct prompts q per step
    num_generations: int = 8  # G, outputs per prompt (DeepSeekMath used 64)
    epsilon: float = 0.2  # lower clip ε (PPO eq. 7)
    epsilon_high: Optional[float] = None  # upper clip (DAPO "clip-higher"); null = ε
    beta: float = 0.0  # KL coefficient; 0 loads no reference model (TRL's default since v0.19)
    num_iterations: int = 1  # μ, policy updates per generation (DeepSeekMath Alg. 1)
    temperature: float = 1.0
    # sampling filters (off by default): the log-probs in the loss stay the full policy's at the temperature, as TRL's
    top_k: int = 0  # > 0: sample among the k likeliest tokens only
    top_p: float = 1.0  # < 1: nucleus sampling (Holtzman et al. 2020)
    max_completion_length: int = 32
    loss_type: str = "grpo"  # grpo (per-sequence mean) | dapo (token-level) | dr_grpo (constant)
    scale_rewards: str = "group"  # group | batch | none (Dr. GRPO)
    adv_eps: float = 1.0e-4  # in (r − mean) / (std + eps)
    lr: float = 1.0e-6  # TRL's default; small models on short runs need more (see experiment/)
    warmup_steps: int = 0  # linear warm-up of the learning rate
    lr_schedule: str = "constant"  # constant | linear (decay to 0 at the last step, TRL's default)
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.99])
    max_grad_norm: Optional[float] = 1.0
    micro_batch_size: int = 16  # sequences per forward/backward; gradients accumulate to one step
    skip_zero_advantage: bool = True  # with β = 0, rows with Â = 0 add nothing to the gradient: skip their passes
    # completions cut off at max_completion_length without an EOS: scored like any other (TRL's default),
    # "zero": rewarded 0 (an unfinished answer is no final answer), "mask": left out of the loss (DAPO)
    truncated: str = "score"
    run_tag: str = "${.name}_${.loss_type}_G${.num_generations}_lr${.lr}_beta${.beta}"  # the run folder's middle part

    @staticmethod
    def check(a) -> None:
        """The checks a schema cannot express: one ConfigError naming the option and what it allows."""
        if not isinstance(a.num_generations, int) or a.num_generations < 2:
            raise ConfigError(
                f"algo.num_generations={a.num_generations}: GRPO normalises rewards within a group, "
                "so it needs G >= 2 (allowed: integers >= 2)"
            )
        check_optimizer(a)
        for key in ("prompts_per_step", "num_iterations", "max_completion_length", "micro_batch_size"):
            int_at_least(f"algo.{key}", a[key], 1)
        if a.epsilon is None or not (math.isfinite(a.epsilon) and 0 < a.epsilon < 1):
            raise ConfigError(f"algo.epsilon={a.epsilon} must lie in (0, 1)")
        if a.epsilon_high is not None and not (math.isfinite(a.epsilon_high) and a.epsilon_high > 0):
            raise ConfigError(f"algo.epsilon_high={a.epsilon_high} must be > 0 or null (= algo.epsilon)")
        if not (math.isfinite(a.beta) and a.beta >= 0):
            raise ConfigError(f"algo.beta={a.beta} must be >= 0 (0 = no reference model)")
        positive("algo.temperature", a.temperature)
        int_at_least("algo.top_k", a.top_k, 0)
        if a.top_p is None or not (0 < a.top_p <= 1):
            raise ConfigError(f"algo.top_p={a.top_p} must lie in (0, 1]")
        positive("algo.adv_eps", a.adv_eps)
        choice("algo.loss_type", a.loss_type, LOSS_TYPES)
        choice("algo.scale_rewards", a.scale_rewards, REWARD_SCALINGS)
        choice("algo.truncated", a.truncated, TRUNCATED)
