"""Structured configs (validated by Hydra's ConfigStore) and the checks Hydra cannot express.

Defaults follow the paper's Table 3 for MuJoCo. Implementation details the paper does not give
are named switches; where the default comes from the code behind the paper's numbers
(openai/baselines ``ppo1``) or from later code (``ppo2``, CleanRL), the comment says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.paths import CONF_DIR



@dataclass
class EnvConfig:
    id: str = "HalfCheetah-v5"
    num_envs: int = 1  # N actors per run (paper MuJoCo: 1)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    obs_norm: bool = True  # running mean/std per run (ppo1)
    obs_clip: float = 5.0  # clip normalised observations to ±obs_clip (ppo1)
    reward_scale: bool = False  # divide by running std of the discounted return (ppo2/CleanRL)
    reward_clip: float = 10.0
    clip_actions: bool = False  # clip sampled actions to the Box bounds before env.step (CleanRL)


@dataclass
class ModelConfig:
    arch: str = "separate"  # separate | shared (paper eq. 9)
    hidden: List[int] = field(default_factory=lambda: [64, 64])  # paper §6.1
    activation: str = "tanh"  # paper §6.1
    # orthogonal (ppo2/CleanRL) | normc (ppo1, the code released with the paper) | default (torch's nn.Linear)
    init: str = "orthogonal"
    log_std_init: float = 0.0


@dataclass
class PPOConfig:
    total_timesteps: int = 1_000_000  # per run (paper: 1M)
    num_steps: int = 2048  # T, horizon per actor per iteration (paper Table 3)
    epochs: int = 10  # K (paper Table 3)
    minibatch_size: int = 64  # M (paper Table 3)
    gamma: float = 0.99  # paper Table 3
    gae_lambda: float = 0.95  # paper Table 3
    lr: float = 3.0e-4  # Adam step size (paper Table 3)
    adam_eps: float = 1.0e-8  # torch/ppo1 default; ppo2 and CleanRL use 1e-5
    # Paper Table 3 (MuJoCo) keeps the step size constant, as does the code released with it (ppo1 at
    # baselines da99706, schedule='constant'); true: linear decay to 0 (ppo1 from baselines d9f194f on, ppo2)
    anneal_lr: bool = False
    norm_adv: str = "batch"  # batch (ppo1) | minibatch (ppo2/CleanRL) | none
    max_grad_norm: Optional[float] = None  # ppo2/CleanRL: 0.5
    # value clipping around the old prediction: ppo1 as released with the paper (clip_param 0.2, on unscaled
    # returns, removed in baselines d9f194f); ppo2/CleanRL: = ε
    clip_value: Optional[float] = None
    vf_coef: float = 1.0  # c1 of paper eq. 9 (only couples anything with model.arch=shared)
    ent_coef: float = 0.0  # c2 of paper eq. 9 (paper MuJoCo: no entropy bonus)


@dataclass
class PopulationConfig:
    # The runs this process trains together: every objective setting × every seed.
    # null means the single `objective` / `seed` of the config.
    seeds: Optional[List[int]] = None
    objectives: Optional[List[Any]] = None


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    objective: Any = MISSING  # PPO's surrogate (conf/objective/)
    algo: Any = MISSING  # the update rule and its settings (conf/algo/): ppo, trpo, …
    model: ModelConfig = field(default_factory=ModelConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    seed: int = 0
    run_root: str = "${hydra:runtime.output_dir}"  # run folders: <run_root>/<env>/<setting>/seed<k>
    # false: start the runs (an existing checkpoint is an error) | true: continue the runs from their checkpoints,
    # finished ones are skipped, and at least one must exist | auto: continue those that exist, start the others
    resume: Any = False
    checkpoint_every: int = 50  # iterations between checkpoints (and at the end)
    progress: str = "auto"  # auto (bar on a terminal, quiet in CI) | always | never
    torch_threads: int = 1
    # torch.compile the update's minibatch gradient — taped forward, the loss's gradient, taped backward — as
    # one graph, the post-update diagnostics pass and the rollout's value pass (Inductor's C++ backend: needs a
    # C++ compiler; 5-40 s of compiling per process). Same update up to float rounding; faster per minibatch
    # step (results/bench/).
    # Off by default; on in experiment=table1.
    compile: bool = False


# Keys of the resolved config that do not change what a run trains (where it is written, how often it is
# checkpointed, progress, threads, compiling: float rounding only); every other key is part of its identity
# (ppo_bench.common.identity). ppo.total_timesteps is compared on its own: raising it extends a finished run. A key
# added to the schema for logging or diagnostics belongs here.
NOT_IDENTITY = ("run_root", "resume", "checkpoint_every", "progress", "torch_threads", "compile", "population",
                "ppo.total_timesteps")


def schema_defaults() -> dict[str, Any]:
    """The schema's default of every key, flattened (``ppo.lr``): what a key the stored identity of an older
    run lacks must equal for the run to stay the same."""
    from ppo_bench.common.identity import flatten

    return flatten(OmegaConf.to_container(OmegaConf.structured(Config), resolve=False))


def register_configs() -> None:
    ConfigStore.instance().store(name="ppo_bench_schema", node=Config)


def objective_defaults(name: str) -> dict:
    """The YAML file of conf/objective/ for this objective: its default hyperparameters."""
    from ppo_bench.rl.algorithms.ppo.objectives import OBJECTIVES

    path = CONF_DIR / "objective" / f"{name}.yaml"
    if name not in OBJECTIVES or not path.exists():
        raise ConfigError(f"objective {name!r} is unknown; allowed: {', '.join(sorted(OBJECTIVES))}")
    return dict(OmegaConf.to_container(OmegaConf.load(path)))


def resolve_objective(spec: Any, where: str = "objective") -> dict:
    """Validate one objective setting {name, **hparams}; fill hparams missing from its YAML defaults."""
    from ppo_bench.rl.algorithms.ppo.objectives import OBJECTIVES

    spec = OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else dict(spec)
    name = spec.get("name")
    if name not in OBJECTIVES:
        raise ConfigError(f"{where}.name={name!r} is unknown; allowed: {', '.join(sorted(OBJECTIVES))}")
    obj = OBJECTIVES[name]
    out = {**objective_defaults(name), **spec}
    for key, value in out.items():
        if key == "name":
            continue
        if key not in obj.hparams:
            allowed = ", ".join(obj.hparams) or "none"
            raise ConfigError(f"{where}.{key} is not an option of objective {name!r}; its options: {allowed}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}.{key}={value!r} must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where}.{key}={value} must be a finite number")
        problem = obj.hparams[key](float(value))
        if problem:
            raise ConfigError(f"{where}.{key}={value} {problem}")
        out[key] = float(value)
    missing = set(obj.hparams) - set(out)
    if missing:
        raise ConfigError(f"{where}: objective {name!r} needs {', '.join(sorted(missing))}")
    return out


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}={value} must be a positive integer")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


def missing_cpp_compiler() -> str | None:
    """Why compile=true cannot work here, or None: torch.compile's CPU backend (Inductor) writes C++ and
    needs a compiler to build it; this asks Inductor's own compiler search."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as e:  # Inductor's InvalidCxxCompiler, or whatever its search raises
        return (f"compile=true needs a C++ compiler for torch.compile's CPU backend, and none was found "
                f"({type(e).__name__}: {e}); install g++ (or set CXX) or use compile=false")
    return None


def check_algo(cfg: DictConfig) -> None:
    """The algo group: a known algorithm, a rollout length and discounting, then its own settings."""
    from ppo_bench.rl.algorithms import get_algorithm

    a = cfg.algo
    if not isinstance(a, DictConfig) or "name" not in a:
        raise ConfigError("algo must be a config group with a name (conf/algo/<name>.yaml), e.g. algo=trpo")
    algorithm = get_algorithm(a.name)
    declared = OmegaConf.load(CONF_DIR / "algo" / f"{a.name}.yaml")
    if "name" not in declared and "algo" in declared:  # a `# @package _global_` file that also sets env.*
        declared = declared.algo
    for key in a:
        if key not in declared:
            raise ConfigError(f"algo.{key} is not an option of algo={a.name}; its options: {', '.join(declared)}")
    _positive_int("algo.num_steps", a.num_steps)
    for key in ("gamma", "gae_lambda"):
        if not 0.0 <= a[key] <= 1.0:
            raise ConfigError(f"algo.{key}={a[key]} must lie in [0, 1]")
    if hasattr(algorithm, "check"):
        algorithm.check(cfg)


def validate(cfg: DictConfig) -> list[dict]:
    """Check everything before any environment is built; return the resolved objective settings (PPO's
    surrogates; one empty setting for any other algorithm)."""
    from ppo_bench.rl.engine.envs import check_env_id
    from ppo_bench.common.hydra_cli import check_declared_keys

    check_declared_keys(cfg)  # a misspelt +ppo.learning_rat=... is an error, not an ignored option
    p = cfg.ppo
    for section in ("env", "model", "ppo"):  # a non-finite hyperparameter would only show up as a failed run
        for key, value in cfg[section].items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{section}.{key}={value} must be a finite number")
    for key in ("total_timesteps", "num_steps", "epochs", "minibatch_size"):
        _positive_int(f"ppo.{key}", p[key])
    _positive_int("env.num_envs", cfg.env.num_envs)
    _positive_int("checkpoint_every", cfg.checkpoint_every)
    _positive_int("torch_threads", cfg.torch_threads)
    batch = cfg.env.num_envs * p.num_steps
    if p.minibatch_size > batch:
        raise ConfigError(
            f"ppo.minibatch_size={p.minibatch_size} is larger than the batch N·T = env.num_envs·ppo.num_steps "
            f"= {cfg.env.num_envs}·{p.num_steps} = {batch}; allowed: 1..{batch}"
        )
    for key in ("gamma", "gae_lambda"):
        if not 0.0 <= p[key] <= 1.0:
            raise ConfigError(f"ppo.{key}={p[key]} must lie in [0, 1]")
    for key in ("lr", "adam_eps"):
        if not p[key] > 0:
            raise ConfigError(f"ppo.{key}={p[key]} must be > 0")
    for key in ("max_grad_norm", "clip_value"):
        if p[key] is not None and not p[key] > 0:
            raise ConfigError(f"ppo.{key}={p[key]} must be > 0 or null")
    for key in ("vf_coef", "ent_coef"):
        if not (math.isfinite(p[key]) and p[key] >= 0):
            raise ConfigError(f"ppo.{key}={p[key]} must be >= 0")
    _choice("ppo.norm_adv", p.norm_adv, ("batch", "minibatch", "none"))
    _choice("model.arch", cfg.model.arch, ("separate", "shared"))
    _choice("model.activation", cfg.model.activation, ("tanh", "relu"))
    _choice("model.init", cfg.model.init, ("orthogonal", "normc", "default"))
    if not cfg.model.hidden or any(not isinstance(h, int) or h <= 0 for h in cfg.model.hidden):
        raise ConfigError(f"model.hidden={list(cfg.model.hidden)} must be a non-empty list of positive integers")
    _choice("progress", cfg.progress, ("auto", "always", "never"))
    if not (isinstance(cfg.resume, bool) or cfg.resume == "auto"):
        raise ConfigError(f"resume={cfg.resume!r} is not allowed; allowed: true, false, auto")
    if cfg.compile and (problem := missing_cpp_compiler()):
        raise ConfigError(problem)
    for key in ("obs_clip", "reward_clip"):
        if not cfg.env[key] > 0:
            raise ConfigError(f"env.{key}={cfg.env[key]} must be > 0")
    presets = sorted(f.stem for f in (CONF_DIR / "env").glob("*.yaml"))
    check_env_id(cfg.env.id, presets)

    check_algo(cfg)
    pop = cfg.population
    if cfg.algo.name != "ppo":
        if pop.objectives is not None:
            raise ConfigError(f"population.objectives is PPO's (its surrogates); algo={cfg.algo.name} has none: "
                              "leave it null")
        settings = [{}]  # one setting: the algorithm's
    elif pop.objectives is not None:
        if len(pop.objectives) == 0:
            raise ConfigError("population.objectives is empty; give at least one {name: ...} or null")
        settings = [resolve_objective(o, f"population.objectives[{i}]") for i, o in enumerate(pop.objectives)]
    else:
        settings = [resolve_objective(cfg.objective)]
    seeds = list(pop.seeds) if pop.seeds is not None else [cfg.seed]
    if not seeds:
        raise ConfigError("population.seeds is empty; give at least one seed or null")
    if any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"population.seeds={seeds} must be non-negative integers")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"population.seeds={seeds} has duplicates")
    return settings
