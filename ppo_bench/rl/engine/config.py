"""Structured configs (validated by Hydra's ConfigStore) and the checks Hydra cannot express.

Defaults follow the paper's Table 3 for MuJoCo (PPO's in conf/algo/ppo.yaml). Implementation details the paper does not give
are named switches; where the default comes from the code behind the paper's numbers
(openai/baselines ``ppo1``) or from later code (``ppo2``, CleanRL), the comment says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from hydra.core.config_store import ConfigStore
import numpy as np
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.hydra_cli import check_declared_keys
from ppo_bench.common.identity import flatten, unflatten
from ppo_bench.common.paths import CONF_DIR
from ppo_bench.rl.engine.env_ids import check_env_id
from ppo_bench.rl.engine.registry import get_algorithm


@dataclass
class EnvConfig:
    id: str = "HalfCheetah-v5"
    num_envs: int = 1  # N actors per run (paper MuJoCo: 1)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    obs_norm: bool = True  # running mean/std per run (ppo1)
    obs_clip: Optional[float] = 5.0  # clip normalised observations to ±obs_clip (ppo1); null: no clipping
    reward_scale: bool = False  # divide by running std of the discounted return (ppo2/CleanRL)
    # what reward_scale divides by: return (the discounted return's running std; ppo2, CleanRL) | reward (the
    # reward's own running std, its running mean kept: r ↦ (r − μ)/σ + μ; Engstrom et al. 2020's "rewards")
    reward_scale_by: str = "return"
    reward_clip: float = 10.0  # applies to scaled rewards only
    clip_actions: bool = False  # clip sampled actions to the Box bounds before env.step (CleanRL)


@dataclass
class ModelConfig:
    arch: str = "separate"  # separate | shared (paper eq. 9)
    hidden: List[int] = field(default_factory=lambda: [64, 64])  # paper §6.1
    activation: str = "tanh"  # paper §6.1
    # orthogonal (ppo2/CleanRL) | normc (ppo1, the code released with the paper) | default (torch's nn.Linear)
    # | xavier (Glorot & Bengio 2010, uniform, gain 1 on every layer, biases 0: Engstrom et al. 2020's PPO-M, TRPO)
    init: str = "orthogonal"
    log_std_init: float = 0.0


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
    algo: Any = MISSING  # the update rule and its settings (conf/algo/<name>.yaml): ppo (paper Table 3), trpo, …
    model: ModelConfig = field(default_factory=ModelConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    total_timesteps: int = 1_000_000  # environment steps per run, whatever the algorithm (paper: 1M)
    seed: int = 0
    # modules of one's own to import before the config is checked: algorithms, objectives, Gymnasium environments
    # they register (docs: "Extending ppo-bench"); their YAML files join through hydra.searchpath
    extensions: List[str] = field(default_factory=list)
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
# (ppo_bench.common.identity). total_timesteps is compared on its own: raising it extends a finished run. A key
# added to the schema for logging or diagnostics belongs here. `extensions` names where code comes from, not
# what it trains (an algorithm's settings are in the identity).
NOT_IDENTITY = ("run_root", "resume", "checkpoint_every", "progress", "torch_threads", "compile", "population",
                "total_timesteps", "extensions")


def schema_defaults(algo: str | None = None) -> dict[str, Any]:
    """The default of every key, flattened (``algo.lr``): the schema's, and the algorithm's own from its
    conf/algo/<algo>.yaml: what a key the stored identity of an older run lacks must equal for the run to
    stay the same."""
    out = flatten(OmegaConf.to_container(OmegaConf.structured(Config), resolve=False))
    path = CONF_DIR / "algo" / f"{algo}.yaml"
    if algo is not None and path.exists():
        declared = OmegaConf.load(path)
        declared = declared.algo if "name" not in declared and "algo" in declared else declared
        out.update(flatten({"algo": OmegaConf.to_container(declared, resolve=False)}))
    return out


def migrate_keys(keys: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened keys of a run written before PPO's settings moved from ``ppo.*`` to ``algo.*`` (and the
    budget to ``total_timesteps``), in today's names: a PPO run's ``algo.lr`` is its ``algo.lr`` (its old
    ``algo.num_steps``, ``algo.gamma``, ``algo.gae_lambda`` were copies of the same values); any other
    algorithm never read ``ppo.*``, so those keys go. Keys in today's names pass unchanged."""
    legacy = {k[len("ppo."):]: v for k, v in keys.items() if k.startswith("ppo.")}
    out = {k: v for k, v in keys.items() if not k.startswith("ppo.")}
    if "total_timesteps" in legacy:
        out.setdefault("total_timesteps", legacy.pop("total_timesteps"))
    if out.get("algo.name") == "ppo":
        out.update({f"algo.{k}": v for k, v in legacy.items()})
    return out


def legacy_key(key: str) -> str:
    """A key named the older way (``ppo.lr``, ``ppo.total_timesteps``) in today's name; others unchanged."""
    if key == "ppo.total_timesteps":
        return "total_timesteps"
    return "algo." + key[len("ppo."):] if key.startswith("ppo.") else key


def migrate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``migrate_keys`` for a nested config (a run folder's config.yaml as read)."""
    return unflatten(migrate_keys(flatten(config)))


MAX_STEPS = 2 ** 62  # step counts (iteration × N × T) and seeds are int64 tensors in the engine
FLOAT32 = np.finfo(np.float32)


def check_representable(values: Mapping[str, Any], prefix: str = "") -> None:
    """Every number of a config section as the engine holds it: an integer in int64 (|v| < 2^62, room for the
    step arithmetic), a float finite and, as float32 (the per-run hyperparameters' tensors), neither overflowing to
    infinity nor a non-zero value rounding to 0; lists and mappings element by element. A ConfigError naming the key
    and the range otherwise: the number would become another one, or a traceback, inside the engine."""
    for key, v in values.items():
        name = f"{prefix}{key}"
        if isinstance(v, (DictConfig, ListConfig)):
            v = OmegaConf.to_container(v, resolve=True)
        if isinstance(v, Mapping):
            check_representable(v, name + ".")
        elif isinstance(v, (list, tuple)):
            check_representable({f"[{i}]": x for i, x in enumerate(v)}, name)
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int) and abs(v) > MAX_STEPS:
            raise ConfigError(f"{name}={v} is outside what the engine counts (at most 2^62 = {MAX_STEPS} in magnitude)")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ConfigError(f"{name}={v} must be a finite number")
            with np.errstate(over="ignore", under="ignore"):
                held = np.float32(v)  # what the engine's tensors hold: overflow is inf, underflow 0
            if not np.isfinite(held) or (v != 0 and held == 0):
                raise ConfigError(f"{name}={v} is outside float32, which the engine holds it in (from "
                                  f"{FLOAT32.smallest_subnormal:.1e} to {FLOAT32.max:.4e} in magnitude, or 0)")


def register_configs() -> None:
    ConfigStore.instance().store(name="ppo_bench_schema", node=Config)


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


def check_type(name: str, value: Any, default: Any) -> None:
    """The algo group is free-form (each algorithm has its own keys), so Hydra cannot check their types: a value
    must have its default's kind — a number where the default is a number, true/false where it is a boolean, a
    string where it is a string (a null default takes any)."""
    kind = (None if default is None or isinstance(default, str) and default.startswith("${") else
            "true or false" if isinstance(default, bool) else
            "a number" if isinstance(default, (int, float)) else "a string" if isinstance(default, str) else None)
    ok = {None: True, "true or false": isinstance(value, bool),
          "a number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "a string": isinstance(value, str)}[kind]
    if not ok:
        raise ConfigError(f"{name}={value!r} must be {kind}")


def check_algo(cfg: DictConfig) -> type:
    """The algo group: a known algorithm, a rollout length and discounting, then its own settings (its
    ``check``); returns the algorithm's class."""
    a = cfg.algo
    if not isinstance(a, DictConfig) or "name" not in a:
        raise ConfigError("algo must be a config group with a name (conf/algo/<name>.yaml), e.g. algo=trpo")
    algorithm = get_algorithm(a.name)
    declared = {k[len("algo."):]: v for k, v in schema_defaults(a.name).items() if k.startswith("algo.")}
    if declared:  # (none: an algorithm of one's own whose YAML is on another search path; Hydra checked its keys)
        for key in a:
            if key not in declared:
                raise ConfigError(f"algo.{key} is not an option of algo={a.name}; its options: "
                                  f"{', '.join(sorted(declared))}")
            check_type(f"algo.{key}", a[key], declared[key])
    for key in ("num_steps", "gamma", "gae_lambda"):
        if key not in a:
            raise ConfigError(f"algo={a.name} has no algo.{key}: every algorithm's YAML sets the rollout length "
                              "num_steps and the discounting gamma, gae_lambda")
    _positive_int("algo.num_steps", a.num_steps)
    for key in ("gamma", "gae_lambda"):
        if not 0.0 <= a[key] <= 1.0:
            raise ConfigError(f"algo.{key}={a[key]} must lie in [0, 1]")
    algorithm.check(cfg)
    return algorithm


def validate(cfg: DictConfig) -> list[dict]:
    """Check everything before any environment is built; return the settings the population's runs differ by
    (the algorithm's: PPO's surrogate objectives; one empty setting for an algorithm without such an axis)."""
    check_declared_keys(cfg)  # a misspelt +algo.learning_rat=... is an error, not an ignored option
    for section in ("env", "model", "algo", "objective"):  # what the engine would hold as float32 / int64 tensors
        node = cfg.get(section)
        if isinstance(node, DictConfig):
            check_representable({k: v for k, v in node.items() if k != "kwargs"}, f"{section}.")
    check_representable({k: cfg[k] for k in ("total_timesteps", "seed", "checkpoint_every", "torch_threads")})
    check_representable({"seeds": list(cfg.population.seeds or [])}, "population.")
    _positive_int("total_timesteps", cfg.total_timesteps)
    cores = os.cpu_count() or 1
    if isinstance(cfg.torch_threads, int) and cfg.torch_threads > cores:
        raise ConfigError(f"torch_threads={cfg.torch_threads} is more than this machine's {cores} cores")
    _positive_int("env.num_envs", cfg.env.num_envs)
    _positive_int("checkpoint_every", cfg.checkpoint_every)
    _positive_int("torch_threads", cfg.torch_threads)
    _choice("model.arch", cfg.model.arch, ("separate", "shared"))
    _choice("model.activation", cfg.model.activation, ("tanh", "relu"))
    _choice("model.init", cfg.model.init, ("orthogonal", "normc", "default", "xavier"))
    _choice("env.reward_scale_by", cfg.env.reward_scale_by, ("return", "reward"))
    if not cfg.model.hidden or any(not isinstance(h, int) or h <= 0 for h in cfg.model.hidden):
        raise ConfigError(f"model.hidden={list(cfg.model.hidden)} must be a non-empty list of positive integers")
    _choice("progress", cfg.progress, ("auto", "always", "never"))
    if not (isinstance(cfg.resume, bool) or cfg.resume == "auto"):
        raise ConfigError(f"resume={cfg.resume!r} is not allowed; allowed: true, false, auto")
    if cfg.compile and (problem := missing_cpp_compiler()):
        raise ConfigError(problem)
    for key in ("obs_clip", "reward_clip"):
        if cfg.env[key] is not None and not cfg.env[key] > 0:
            raise ConfigError(f"env.{key}={cfg.env[key]} must be > 0")
    presets = sorted(f.stem for f in (CONF_DIR / "env").glob("*.yaml"))
    check_env_id(cfg.env.id, presets)

    algorithm = check_algo(cfg)
    settings = algorithm.settings(cfg)
    check_representable({f"[{i}]": dict(s) for i, s in enumerate(settings) if s}, "population.objectives")
    pop = cfg.population
    seeds = list(pop.seeds) if pop.seeds is not None else [cfg.seed]
    if not seeds:
        raise ConfigError("population.seeds is empty; give at least one seed or null")
    if any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"population.seeds={seeds} must be non-negative integers")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"population.seeds={seeds} has duplicates")
    return settings
