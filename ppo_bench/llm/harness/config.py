"""The settings every LM run shares — model, task, evaluation, where and how it runs — as structured configs
(validated by Hydra's ConfigStore), the checks a schema cannot express, and what of them is a run's identity.

Config groups mirror the code: ``conf_llm/model`` → :mod:`models`, ``conf_llm/task`` → :mod:`tasks`,
``conf_llm/algo/<name>`` → the algorithm's own config (``ppo_bench/llm/algorithms/<name>/config.py``, found through
``registry``). The small checks below (``choice``, ``int_at_least``, ``positive``, ``check_optimizer``,
``check_preference_data``) are the algorithms' too, so that a bad option reads the same whichever names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.hydra_cli import check_declared_keys
from ppo_bench.common.identity import flatten
from ppo_bench.llm.harness.models import MODEL_SOURCES, require
from ppo_bench.llm.harness.registry import LM_ALGORITHMS, lm_algorithm
from ppo_bench.llm.harness.tasks import TASKS

SCHEMA_NAME = "ppo_bench_llm_schema"

DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
LR_SCHEDULES = ("constant", "linear", "cosine")  # run.LMRun.lr_factor


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
    # LoRA (Hu et al. 2021) through peft (pip install 'ppo-bench[lora]'): r > 0 trains rank-r adapters on the target
    # layers instead of the weights; the reference model, the saved model/ (merged) and the evaluation are plain
    lora_r: int = 0
    lora_alpha: float = 16.0  # the update is scaled by alpha / r
    lora_dropout: float = 0.0
    lora_targets: List[str] = field(default_factory=lambda: ["all-linear"])  # module names, or all-linear (peft's)


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
class EvalConfig:
    every: int = 10  # steps between held-out greedy evaluations (0 = only before and after)
    batch_size: int = 64
    max_new_tokens: int = 64  # greedy budget, the same before and after training
    periodic_n: int = 0  # held-out problems scored by the evaluations during training (0 = all; before/after always use all)
    before: bool = True
    after: bool = True  # all n_eval problems when the run ends (false: a run that ppo-bench-llm-eval evaluates anyway)
    every_s: Optional[float] = None  # also evaluate when this many seconds of wall_s passed since the last evaluation
    in_wall: bool = True  # periodic evaluations count in wall_s and max_wall_s (false: a budget that measuring does not spend)


@dataclass
class LLMConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    algo: Any = MISSING  # conf_llm/algo/<name>.yaml, validated by its algorithm's schema (<name>_schema, registry.py)
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
    # modules of one's own imported before the config is checked: the LM algorithms (and tasks) they register
    # (docs/llm.md, "Adding an algorithm"); their YAML files join through hydra.searchpath
    extensions: List[str] = field(default_factory=list)


# Keys of the resolved config that do not change what a run trains: where it is written (run_root, run_name,
# algo.run_tag), how it is watched or saved (progress, checkpoint_every, save_model, log_completions), threads
# (float rounding only), the GGUF cache (the same weights either way), and the evaluations' schedule and batching
# (they draw no random numbers and restore the model's mode). Every other key is part of its identity
# (ppo_bench.common.identity), eval.max_new_tokens too: it decides what the run's accuracies before and after measure.
# `extensions` names where code comes from, not what it trains (the algorithm's settings are in the identity).
# The run's length is compared on its own: raising algo.steps extends a finished run, and a run stopped by
# max_wall_s (setup_in_wall and eval.in_wall decide what that budget counts) continues under a larger one.
NOT_IDENTITY = ("run_root", "run_name", "resume", "progress", "checkpoint_every", "save_model", "log_completions",
                "torch_threads", "model.gguf_cache", "eval.every", "eval.every_s", "eval.periodic_n", "eval.batch_size",
                "eval.before", "eval.after", "eval.in_wall", "max_wall_s", "setup_in_wall", "algo.steps", "algo.run_tag", "extensions")


def register_configs() -> None:
    """The top-level schema; each algorithm's is stored as it is registered (``registry.register_lm_algorithm``)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=LLMConfig)


def algo_run_tags() -> dict[str, str]:
    """Each registered algorithm's run_tag template (the middle part of its run folder's name), from its schema."""
    return {name: cls.config.run_tag for name, cls in LM_ALGORITHMS.items()}


def schema_defaults(algo: str) -> dict[str, Any]:
    """The schema's default of every key of a run of ``algo``, flattened (``algo.lr``): what a key the stored
    identity of an older run lacks must equal for the run to stay the same."""
    top = OmegaConf.to_container(OmegaConf.structured(LLMConfig), resolve=False)
    top["algo"] = OmegaConf.to_container(OmegaConf.structured(lm_algorithm(algo).config), resolve=False)
    return flatten(top)


# ---- checks, one line each, naming the option and what it allows -------------------------------------------


def choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(map(str, allowed))}")


def int_at_least(key: str, value, low: int) -> None:
    if not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value} must be an integer >= {low}")


def positive(key: str, value) -> None:
    if value is None or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{key}={value} must be > 0")


def non_negative(key: str, value) -> None:
    if value is None or not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{key}={value} must be >= 0")


def check_optimizer(a) -> None:
    """The keys every algorithm's optimizer has: steps, lr and its schedule, weight decay, gradient clipping."""
    int_at_least("algo.steps", a.steps, 1)
    int_at_least("algo.warmup_steps", a.warmup_steps, 0)
    positive("algo.lr", a.lr)
    non_negative("algo.weight_decay", a.weight_decay)
    if a.max_grad_norm is not None and not (math.isfinite(a.max_grad_norm) and a.max_grad_norm > 0):
        raise ConfigError(f"algo.max_grad_norm={a.max_grad_norm} must be > 0 or null")
    choice("algo.lr_schedule", a.lr_schedule, LR_SCHEDULES)


def check_preference_data(a) -> None:
    """The keys of the preference methods' data (``preferences.pairs_for_run``): the file, or how pairs are sampled."""
    for key, low in (("num_prompts", 1), ("num_samples", 2), ("pairs_per_prompt", 1), ("max_completion_length", 1)):
        int_at_least(f"algo.{key}", a[key], low)
    positive("algo.temperature", a.temperature)
    if "{answer}" not in a.answer_template:
        raise ConfigError(f"algo.answer_template={a.answer_template!r} must contain {{answer}}")


def typed_algo(cfg: DictConfig) -> None:
    """Give ``cfg.algo`` its algorithm's schema when its YAML did not name it (an algorithm whose module was imported
    after Hydra composed the config): its types and defaults, and unknown keys refused."""
    schema = lm_algorithm(cfg.algo.name).config
    if OmegaConf.get_type(cfg.algo) is not schema:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg.algo)
        with open_dict(cfg):
            cfg.algo = merged


def validate(cfg: DictConfig) -> None:
    """Every check that needs no tokenizer or model (README, "Train": one line, exit code 2): raise ConfigError naming
    the option. The algorithm's module must be imported (registered) first: the built-in ones by
    ``ppo_bench.llm.algorithms``, one's own through ``extensions`` (``ppo_bench.llm.launch`` does both)."""
    choice("algo.name", cfg.algo.name, sorted(LM_ALGORITHMS))
    typed_algo(cfg)
    check_declared_keys(cfg)
    choice("model.name", cfg.model.name, sorted(MODEL_SOURCES))
    choice("task.name", cfg.task.name, sorted(TASKS))
    if cfg.model.name in ("hf", "gguf") and not cfg.model.path:
        raise ConfigError(f"model.path is required for model.name={cfg.model.name} (a {'directory' if cfg.model.name == 'hf' else '.gguf file'})")
    check = getattr(lm_algorithm(cfg.algo.name).config, "check", None)
    if check is not None:
        check(cfg.algo)
    _validate_common(cfg)


def _validate_common(cfg: DictConfig) -> None:
    choice("device", cfg.device, DEVICES)
    choice("dtype", cfg.dtype, DTYPES)
    choice("progress", cfg.progress, ("auto", "always", "never"))
    int_at_least("torch_threads", cfg.torch_threads, 0)
    int_at_least("checkpoint_every", cfg.checkpoint_every, 1)
    int_at_least("eval.every", cfg.eval.every, 0)
    int_at_least("eval.batch_size", cfg.eval.batch_size, 1)
    int_at_least("eval.max_new_tokens", cfg.eval.max_new_tokens, 1)
    int_at_least("task.n_eval", cfg.task.n_eval, 1)
    int_at_least("eval.periodic_n", cfg.eval.periodic_n, 0)
    check_lora(cfg.model)
    if cfg.max_wall_s is not None:
        positive("max_wall_s", cfg.max_wall_s)
    if cfg.eval.every_s is not None:
        positive("eval.every_s", cfg.eval.every_s)
    offered = TASKS[cfg.task.name].rewards
    if not cfg.task.rewards:
        raise ConfigError(f"task.rewards is empty; task {cfg.task.name} offers: {', '.join(offered)}")
    for name, weight in cfg.task.rewards.items():
        choice("task.rewards", name, list(offered))
        if weight is None or not math.isfinite(weight):
            raise ConfigError(f"task.rewards.{name}={weight} must be a finite weight")
    TASKS[cfg.task.name].validate(cfg.task)


def check_lora(mcfg) -> None:
    int_at_least("model.lora_r", mcfg.lora_r, 0)
    if mcfg.lora_r == 0:
        return
    positive("model.lora_alpha", mcfg.lora_alpha)
    if mcfg.lora_dropout is None or not (0 <= mcfg.lora_dropout < 1):
        raise ConfigError(f"model.lora_dropout={mcfg.lora_dropout} must lie in [0, 1)")
    if not mcfg.lora_targets:
        raise ConfigError("model.lora_targets is empty: name the layers to adapt (e.g. [q_proj,v_proj]) or [all-linear]")
    require("peft", hint="pip install 'ppo-bench[lora]'", what="model.lora_r > 0 (LoRA)")


def run_name(cfg: DictConfig) -> str:
    """The run's folder under run_root (conf_llm/config.yaml names it after task, model and the key
    hyperparameters, so TensorBoard's run selector reads like the sweep)."""
    if cfg.run_name:
        return str(cfg.run_name)
    return f"{cfg.task.name}-{cfg.model.name}/{cfg.algo.run_tag}/seed{cfg.seed}"
