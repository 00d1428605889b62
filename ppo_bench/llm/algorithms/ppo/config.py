"""The PPO-for-LMs config group (``conf_llm/algo/ppo.yaml``): its structured schema and its checks.

Defaults follow TRL's ``PPOConfig`` and trlx where they have the option (ε = 0.2, value clip 0.2,
γ = 1, λ = 0.95, KL coefficient 0.05, 4 PPO epochs, value coefficient 0.1); the adaptive KL
controller is Ziegler et al. 2019's (target 6 nats per sequence, horizon 10,000 sequences). The stabilisers
(value-only warm-up as OpenRLHF's ``freezing_actor_steps``, the value head from the reward model's as InstructGPT's
value model, running reward normalisation, the value head's own step size) are off by default: docs/llm.md,
"Stabilising PPO", says what each does and how they are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness.config import check_optimizer, choice, int_at_least, non_negative, positive

VALUE_INITS = ("zeros", "reward_model")
REWARD_NORMS = ("none", "running", "scale")


@dataclass
class PPOConfig:
    name: str = "ppo"
    steps: int = 100  # rollouts (each followed by ppo_epochs passes of minibatch updates)
    prompts_per_step: int = 16  # completions per rollout, one per prompt
    ppo_epochs: int = 4  # μ, passes over each rollout
    minibatch_size: int = 8  # completions per optimizer step
    micro_batch_size: int = 8  # completions per forward/backward; gradients accumulate to one minibatch
    epsilon: float = 0.2  # policy clip ε (PPO eq. 7)
    epsilon_high: Optional[float] = None  # upper clip; null = ε
    value_clip: float = 0.2  # the value loss is clipped to old value ± this (trlx's cliprange_value)
    vf_coef: float = 0.1  # c1: weight of the value loss (TRL's default)
    gamma: float = 1.0  # discount over response tokens
    lam: float = 0.95  # GAE λ
    kl_coef: float = 0.05  # β of the per-token reward −β·(log π − log π_ref); the adaptive controller's start
    adaptive_kl: bool = False  # Ziegler et al. 2019's proportional controller of β
    kl_target: float = 6.0  # adaptive: target KL per sequence (nats)
    kl_horizon: int = 10000  # adaptive: sequences over which β moves by at most ±20 %
    whiten_advantages: bool = True
    # stabilisers (off by default until measured; docs/llm.md, "Stabilising PPO")
    value_warmup_steps: int = 0  # first rollouts that train the value head alone: the policy (and trunk) do not move
    vf_lr: Optional[float] = None  # the value head's own learning rate (same schedule); null = algo.lr
    value_init: str = "zeros"  # zeros | reward_model: the value head starts as the reward model's head (RLHF)
    reward_norm: str = "none"  # none | running: (r − mean)/std | scale: r/std, over every score seen so far
    temperature: float = 1.0
    max_completion_length: int = 32
    truncated: str = "score"  # a completion cut off without EOS: scored like any other, or "zero": rewarded 0
    reward_model: Optional[str] = None  # the model/ folder of an algo=reward_model run; null = the task's verifier
    lr: float = 1.0e-6
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | linear
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: Optional[float] = 1.0
    run_tag: str = "${.name}_kl${.kl_coef}_lr${.lr}_ep${.ppo_epochs}"  # the run folder's middle part

    @staticmethod
    def check(a) -> None:
        """The checks a schema cannot express: one ConfigError naming the option and what it allows."""
        check_optimizer(a)
        for key in ("prompts_per_step", "ppo_epochs", "minibatch_size", "micro_batch_size", "max_completion_length",
                    "kl_horizon"):
            int_at_least(f"algo.{key}", a[key], 1)
        if a.minibatch_size > a.prompts_per_step:
            raise ConfigError(f"algo.minibatch_size={a.minibatch_size} must be <= algo.prompts_per_step={a.prompts_per_step} "
                              "(the completions of one rollout)")
        if a.epsilon is None or not (math.isfinite(a.epsilon) and 0 < a.epsilon < 1):
            raise ConfigError(f"algo.epsilon={a.epsilon} must lie in (0, 1)")
        if a.epsilon_high is not None and not (math.isfinite(a.epsilon_high) and a.epsilon_high > 0):
            raise ConfigError(f"algo.epsilon_high={a.epsilon_high} must be > 0 or null (= algo.epsilon)")
        for key in ("value_clip", "temperature", "kl_target"):
            positive(f"algo.{key}", a[key])
        for key in ("vf_coef", "kl_coef"):
            non_negative(f"algo.{key}", a[key])
        for key in ("gamma", "lam"):
            if a[key] is None or not (0 <= a[key] <= 1):
                raise ConfigError(f"algo.{key}={a[key]} must lie in [0, 1]")
        if a.adaptive_kl and a.kl_coef == 0:
            raise ConfigError("algo.adaptive_kl=true needs algo.kl_coef > 0 (the controller scales β)")
        choice("algo.truncated", a.truncated, ("score", "zero"))
        int_at_least("algo.value_warmup_steps", a.value_warmup_steps, 0)
        if a.vf_lr is not None:
            positive("algo.vf_lr", a.vf_lr)
        choice("algo.value_init", a.value_init, VALUE_INITS)
        choice("algo.reward_norm", a.reward_norm, REWARD_NORMS)
        if a.value_init == "reward_model" and not a.reward_model:
            raise ConfigError("algo.value_init=reward_model needs algo.reward_model (the model/ folder of an algo=reward_model run)")
