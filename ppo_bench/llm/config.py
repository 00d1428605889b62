"""Structured configs of the LLM app (validated by Hydra's ConfigStore) and the checks Hydra cannot express.

Config groups mirror the code: ``conf_llm/model`` → :mod:`models`, ``conf_llm/task`` → :mod:`tasks`,
``conf_llm/algo`` → :mod:`grpo`. GRPO defaults follow DeepSeekMath (per-sequence mean, group std,
ε = 0.2); where TRL's ``GRPOConfig`` differs the comment says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.common.hydra_cli import check_declared_keys

SCHEMA_NAME = "ppo_bench_llm_schema"

ALGORITHMS = ("grpo", "dpo", "kto", "ppo", "reward_model")  # conf_llm/algo/<name>.yaml
LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
REWARD_SCALINGS = ("group", "batch", "none")
TRUNCATED = ("score", "zero", "mask")
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    name: str = "smollm2"  # smollm2 | tiny | hf | gguf  (models.MODEL_SOURCES)
    path: Optional[str] = None  # hf: a model directory; gguf: a .gguf file
    freeze_embeddings: bool = False  # keep the (tied) token embeddings fixed: fewer trainable parameters
    gguf_cache: bool = True  # dequantise a GGUF once, keep it under $PPO_BENCH_CACHE (~/.cache/ppo-bench)
    # tiny: a randomly initialised Llama-style model over the project's character tokenizer (tests)
    tiny_hidden: int = 64
    tiny_layers: int = 2
    tiny_heads: int = 4
    tiny_context: int = 256


@dataclass
class TaskConfig:
    name: str = "addition"  # addition | reverse | countdown  (tasks.TASKS)
    digits: int = 2  # addition: operands with exactly this many digits
    min_len: int = 3  # reverse: word length range
    max_len: int = 6
    numbers: int = 3  # countdown: how many numbers to combine
    template: Optional[str] = None  # user message; null = the task's plain question
    system_prompt: Optional[str] = None  # null = the tokenizer's own default (if any)
    chat: bool = True  # apply the tokenizer's chat template
    n_eval: int = 200  # held-out problems, disjoint from every training prompt
    split_seed: int = 1234  # which problems are held out (fixed across training seeds)
    rewards: Dict[str, float] = field(default_factory=lambda: {"correct": 1.0})  # name → weight, summed


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


@dataclass
class EvalConfig:
    every: int = 10  # steps between held-out greedy evaluations (0 = only before and after)
    batch_size: int = 64
    max_new_tokens: int = 64  # greedy budget, the same before and after training
    periodic_n: int = 0  # held-out problems scored by the evaluations during training (0 = all; before/after always use all)
    before: bool = True
    every_s: Optional[float] = None  # also evaluate when this many seconds of wall_s passed since the last evaluation
    in_wall: bool = True  # periodic evaluations count in wall_s and max_wall_s (false: a budget that measuring does not spend)


@dataclass
class LLMConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    algo: Any = MISSING  # conf_llm/algo/<name>.yaml, validated by its own schema (grpo_, dpo_, kto_, ppo_, reward_model_schema)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto (a GPU when present)
    dtype: str = "auto"  # compute dtype (autocast; weights stay float32): auto = float32 on CPU, bfloat16 on a GPU that has it
    torch_threads: int = 0  # 0 = torch's default
    run_root: str = "runs/llm"
    run_name: Optional[str] = None  # set in conf_llm/config.yaml: <task>-<model>/<algo>_<loss>_G<G>_lr<lr>_beta<β>/seed<k>
    resume: bool = True  # continue from run_dir/checkpoint.pt when it exists
    checkpoint_every: int = 10
    max_wall_s: Optional[float] = None  # stop the training loop after this many seconds (summed over resumes)
    setup_in_wall: bool = False  # count the algorithm's setup (preference pairs, the reference pass) in wall_s and max_wall_s
    save_model: bool = True  # write the final weights as a Hugging Face directory
    log_completions: int = 2  # sample completions written to TensorBoard text per step
    progress: str = "auto"  # auto | always | never


# Keys of the resolved config that do not change what a run trains: where it is written (run_root, run_name,
# algo.run_tag), how it is watched or saved (progress, checkpoint_every, save_model, log_completions), threads
# (float rounding only), the GGUF cache (the same weights either way), and the evaluations' schedule and batching
# (they draw no random numbers and restore the model's mode). Every other key is part of its identity
# (ppo_bench.common.identity), eval.max_new_tokens too: it decides what the run's accuracies before and after measure.
# The run's length is compared on its own: raising algo.steps extends a finished run, and a run stopped by
# max_wall_s (setup_in_wall and eval.in_wall decide what that budget counts) continues under a larger one.
NOT_IDENTITY = ("run_root", "run_name", "resume", "progress", "checkpoint_every", "save_model", "log_completions",
                "torch_threads", "model.gguf_cache", "eval.every", "eval.every_s", "eval.periodic_n", "eval.batch_size",
                "eval.before", "eval.in_wall", "max_wall_s", "setup_in_wall", "algo.steps", "algo.run_tag")


def algo_schemas() -> dict[str, type]:
    """Each algorithm's schema (conf_llm/algo/<name>.yaml's first default), by name."""
    from ppo_bench.llm.dpo_config import DPOConfig
    from ppo_bench.llm.kto_config import KTOConfig
    from ppo_bench.llm.ppo_config import PPOConfig
    from ppo_bench.llm.reward_model_config import RewardModelConfig

    return {c.name: c for c in (GRPOConfig, DPOConfig, KTOConfig, PPOConfig, RewardModelConfig)}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=LLMConfig)
    # one schema per algorithm, named in the defaults of conf_llm/algo/<name>.yaml (BenchMARL's layout)
    for name, schema in algo_schemas().items():
        cs.store(group="algo", name=f"{name}_schema", node=schema)


def algo_run_tags() -> dict[str, str]:
    """Each algorithm's run_tag template (the middle part of its run folder's name), from its schema."""
    return {name: schema.run_tag for name, schema in algo_schemas().items()}


def schema_defaults(algo: str) -> dict[str, Any]:
    """The schema's default of every key of a run of ``algo``, flattened (``algo.lr``): what a key the stored
    identity of an older run lacks must equal for the run to stay the same."""
    from omegaconf import OmegaConf

    from ppo_bench.common.identity import flatten

    top = OmegaConf.to_container(OmegaConf.structured(LLMConfig), resolve=False)
    top["algo"] = OmegaConf.to_container(OmegaConf.structured(algo_schemas()[algo]), resolve=False)
    return flatten(top)


def _choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(map(str, allowed))}")


def _int_at_least(key: str, value, low: int) -> None:
    if not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value} must be an integer >= {low}")


def _positive(key: str, value) -> None:
    if value is None or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key}={value} must be > 0")


def validate(cfg: DictConfig) -> None:
    """Every check that needs no tokenizer or model (README, "Train": one line, exit code 2): raise ConfigError naming the option."""
    from ppo_bench.llm.models import MODEL_SOURCES
    from ppo_bench.llm.tasks import TASKS

    check_declared_keys(cfg)
    a = cfg.algo
    _choice("model.name", cfg.model.name, sorted(MODEL_SOURCES))
    _choice("task.name", cfg.task.name, sorted(TASKS))
    if cfg.model.name in ("hf", "gguf") and not cfg.model.path:
        raise ConfigError(f"model.path is required for model.name={cfg.model.name} (a {'directory' if cfg.model.name == 'hf' else '.gguf file'})")
    _choice("algo.name", a.name, ALGORITHMS)
    if a.name == "dpo":
        from ppo_bench.llm.dpo_config import validate_dpo_algo

        validate_dpo_algo(a)
    elif a.name == "kto":
        from ppo_bench.llm.kto_config import validate_kto_algo

        validate_kto_algo(a)
    elif a.name == "ppo":
        from ppo_bench.llm.ppo_config import validate_ppo_algo

        validate_ppo_algo(a)
    elif a.name == "reward_model":
        from ppo_bench.llm.reward_model_config import validate_reward_model_algo

        validate_reward_model_algo(a)
    else:
        _validate_grpo_algo(a)
    _validate_common(cfg)


def _validate_grpo_algo(a) -> None:
    if not isinstance(a.num_generations, int) or a.num_generations < 2:
        raise ConfigError(
            f"algo.num_generations={a.num_generations}: GRPO normalises rewards within a group, "
            "so it needs G >= 2 (allowed: integers >= 2)"
        )
    _int_at_least("algo.steps", a.steps, 1)
    _int_at_least("algo.prompts_per_step", a.prompts_per_step, 1)
    _int_at_least("algo.num_iterations", a.num_iterations, 1)
    _int_at_least("algo.max_completion_length", a.max_completion_length, 1)
    _int_at_least("algo.micro_batch_size", a.micro_batch_size, 1)
    _int_at_least("algo.warmup_steps", a.warmup_steps, 0)
    if a.epsilon is None or not (math.isfinite(a.epsilon) and 0 < a.epsilon < 1):
        raise ConfigError(f"algo.epsilon={a.epsilon} must lie in (0, 1)")
    if a.epsilon_high is not None and not (math.isfinite(a.epsilon_high) and a.epsilon_high > 0):
        raise ConfigError(f"algo.epsilon_high={a.epsilon_high} must be > 0 or null (= algo.epsilon)")
    if not (math.isfinite(a.beta) and a.beta >= 0):
        raise ConfigError(f"algo.beta={a.beta} must be >= 0 (0 = no reference model)")
    _positive("algo.temperature", a.temperature)
    _positive("algo.lr", a.lr)
    _positive("algo.adv_eps", a.adv_eps)
    if a.max_grad_norm is not None:
        _positive("algo.max_grad_norm", a.max_grad_norm)
    _choice("algo.loss_type", a.loss_type, LOSS_TYPES)
    _choice("algo.scale_rewards", a.scale_rewards, REWARD_SCALINGS)
    _choice("algo.lr_schedule", a.lr_schedule, ("constant", "linear"))
    _choice("algo.truncated", a.truncated, TRUNCATED)


def _validate_common(cfg: DictConfig) -> None:
    from ppo_bench.llm.tasks import TASKS

    _choice("device", cfg.device, DEVICES)
    _choice("dtype", cfg.dtype, DTYPES)
    _choice("progress", cfg.progress, ("auto", "always", "never"))
    _int_at_least("torch_threads", cfg.torch_threads, 0)
    _int_at_least("checkpoint_every", cfg.checkpoint_every, 1)
    _int_at_least("eval.every", cfg.eval.every, 0)
    _int_at_least("eval.batch_size", cfg.eval.batch_size, 1)
    _int_at_least("eval.max_new_tokens", cfg.eval.max_new_tokens, 1)
    _int_at_least("task.n_eval", cfg.task.n_eval, 1)
    _int_at_least("eval.periodic_n", cfg.eval.periodic_n, 0)
    if cfg.max_wall_s is not None:
        _positive("max_wall_s", cfg.max_wall_s)
    if cfg.eval.every_s is not None:
        _positive("eval.every_s", cfg.eval.every_s)
    offered = TASKS[cfg.task.name].rewards
    if not cfg.task.rewards:
        raise ConfigError(f"task.rewards is empty; task {cfg.task.name} offers: {', '.join(offered)}")
    for name, weight in cfg.task.rewards.items():
        _choice("task.rewards", name, list(offered))
        if weight is None or not math.isfinite(weight):
            raise ConfigError(f"task.rewards.{name}={weight} must be a finite weight")
    TASKS[cfg.task.name].validate(cfg.task)


def run_name(cfg: DictConfig) -> str:
    """The run's folder under run_root (conf_llm/config.yaml names it after task, model and the key
    hyperparameters, so TensorBoard's run selector reads like the sweep)."""
    if cfg.run_name:
        return str(cfg.run_name)
    return f"{cfg.task.name}-{cfg.model.name}/{cfg.algo.run_tag}/seed{cfg.seed}"
