"""Launching a population: validate the config, name its runs, check their folders, train them.

What ``ppo-bench`` does after Hydra composed the config; also what a script or a test calls to train from a
config of its own (``train_from_config``). The built-in algorithms (``ppo_bench.rl.algorithms``) and the
config's ``extensions`` are imported before the config is checked.
"""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path

import torch
from omegaconf import DictConfig

import ppo_bench.rl.algorithms  # noqa: F401 — registers the built-in algorithms
from ppo_bench.common.errors import ConfigError, check_writable
from ppo_bench.common.extensions import import_extensions
from ppo_bench.common.identity import IDENTITY, LEGACY, read_config, read_identity, stored_keys
from ppo_bench.common.run_folder import (CHECKPOINT, PREVIOUS, REFUSED_REMEDY, STATUS, RunLocks, check_not_in_use,
                                         fresh_start_problem, has_checkpoint, read_status)
from ppo_bench.rl.engine.config import NOT_IDENTITY, migrate_config, migrate_keys, register_configs, validate
from ppo_bench.rl.engine.envs import check_spaces, make_env
from ppo_bench.rl.engine.population import RunSpec, expand
from ppo_bench.rl.engine.trainer import PopulationTrainer, check_run_identity

register_configs()  # the schema Hydra composes ppo-bench's configs against



def population_specs(cfg: DictConfig) -> list[RunSpec]:
    """Import the config's extensions, validate it and name every run it asks for: settings (PPO's objective
    settings) × seeds."""
    import_extensions(cfg.get("extensions") or ())
    settings = validate(cfg)
    seeds = list(cfg.population.seeds) if cfg.population.seeds is not None else [cfg.seed]
    return expand(cfg.env.id, settings, seeds, cfg.run_root, cfg.algo.name)


def started(run_dir: Path) -> bool:
    """Whether a launch already wrote this run folder (a checkpoint, or only its first files)."""
    return any((run_dir / f).exists() for f in (CHECKPOINT, PREVIOUS, STATUS, IDENTITY, LEGACY))


def iterations_steps(cfg: DictConfig) -> int:
    """The environment steps a run of this config trains: total_timesteps rounded up to whole iterations."""
    per_iter = cfg.env.num_envs * cfg.algo.num_steps
    return math.ceil(cfg.total_timesteps / per_iter) * per_iter


def recorded_length(run_dir: Path) -> int | None:
    """The total_timesteps a run was launched for: its identity.json's, else (a run of ppo-bench 0.1) its
    config.yaml's."""
    stored = read_identity(run_dir)
    length = stored.get("total_timesteps") if stored else None
    if length is None and (run_dir / LEGACY).exists():
        length = migrate_config(read_config(run_dir)).get("total_timesteps")
    return int(length) if isinstance(length, (int, float)) and not isinstance(length, bool) else None


def check_length(cfg: DictConfig, spec: RunSpec, trained: int | None) -> None:
    """A run's budget may only be raised (to extend it): a lower total_timesteps would record the run as a shorter
    one than it is, or, with a schedule annealed over the budget (algo.anneal_lr), as one it never was."""
    length = recorded_length(spec.dir)
    if length is not None and cfg.total_timesteps < length:
        so_far = f", trained {trained} steps so far" if trained is not None else ""
        raise ConfigError(f"run {spec.dir} was launched for total_timesteps={length}{so_far}; total_timesteps="
                          f"{cfg.total_timesteps} would record it as a shorter run: it may only be raised (to "
                          f"extend the run); relaunch with total_timesteps={length} or more, or choose another run folder")
    if length is None and trained is not None and iterations_steps(cfg) < trained:
        raise ConfigError(f"run {spec.dir} has trained {trained} steps; total_timesteps={cfg.total_timesteps} is "
                          "fewer: it may only be raised (to extend the run), or choose another run folder")


def folder_plan(cfg: DictConfig, spec: RunSpec) -> str:
    """What a launch does with a run's folder — 'fresh' (start, clearing only what a process that died before its
    first checkpoint left), 'resume' (continue from its checkpoint) or 'skip' (finished at this length) — decided
    from what the folder holds, before anything is written; a ConfigError (one line) for anything else: nothing a
    checkpointed or finished run holds is replaced, a run's files without an identity are not adopted, a run is
    continued or skipped only under its own settings (``ppo_bench.common.identity``) and length (``check_length``)."""
    d = spec.dir
    checkpointed, has_status = has_checkpoint(d), (d / STATUS).exists()
    if not checkpointed and not has_status:  # empty, or a dead process's first files: only this very run's
        problem = fresh_start_problem(d, status_means_checkpointed=True)
        if problem:
            raise ConfigError(f"{problem}; {REFUSED_REMEDY}")
        check_run_identity(cfg, spec)
        return "fresh"
    if not cfg.resume:
        what = d / CHECKPOINT if checkpointed else d / STATUS
        raise ConfigError(f"resume=false but {what} exists; pass resume=true to continue that run or choose another "
                          "hydra.run.dir / run_root")
    if stored_keys(d, NOT_IDENTITY, migrate_keys) is None:
        raise ConfigError(f"{d} holds a run's files but no identity.json or config.yaml to say whose; it is not "
                          f"adopted; {REFUSED_REMEDY}")
    check_run_identity(cfg, spec)
    status = read_status(d, required=("global_step",))
    trained = status["global_step"] if status else None
    check_length(cfg, spec, trained)
    if status and status["status"] == "finished" and status["global_step"] >= iterations_steps(cfg):
        return "skip"
    if checkpointed:
        return "resume"
    state = f"a {status['status']} run" if status else "a run whose status.json is damaged"
    raise ConfigError(f"{d} holds {state} without a checkpoint to continue from (its checkpoints were removed, or it "
                      f"was unpacked from an archive); it is not replaced; {REFUSED_REMEDY}")


def check_run_folders(cfg: DictConfig, specs: list[RunSpec], locked: bool = False) -> dict[str, str]:
    """Before anything is built or written: resume=true must find runs, and every run folder must allow what the
    launch would do with it (``folder_plan``); returns each run's plan. A folder another process trains is refused
    first, naming that process (``check_not_in_use``; ``locked``: this process holds the locks): what it holds is
    still changing."""
    if not locked:
        check_not_in_use(s.dir for s in specs)
    if cfg.resume is True and not any(started(s.dir) for s in specs):
        where = specs[0].dir if len(specs) == 1 else f"{cfg.run_root} (e.g. {specs[0].dir})"
        raise ConfigError(f"resume=true but no run of this launch exists in {where}; check run_root / "
                          "hydra.run.dir, or launch with resume=auto (start what is missing) or resume=false")
    return {s.name: folder_plan(cfg, s) for s in specs}


def check_environment(cfg: DictConfig) -> None:
    """One of the config's environments built and its spaces checked (``check_spaces``: an action space the policy
    does not model is refused), before any run folder is written."""
    env = make_env(cfg.env.id, disable_env_checker=True, **dict(cfg.env.kwargs or {}))
    try:
        check_spaces(cfg.env.id, env.observation_space, env.action_space)
    finally:
        env.close()


def train_from_config(cfg: DictConfig) -> dict[str, dict]:
    """Validate, build and train every run the config names; returns a summary per run."""
    specs = population_specs(cfg)
    check_run_folders(cfg, specs)  # read-only: a refused launch leaves no trace
    check_writable(cfg.run_root, folder=True)  # a run root that cannot be written: said before anything is built
    check_environment(cfg)  # an action space the policy does not model: refused before any folder is made
    check_memory(cfg, len(specs))
    with RunLocks(s.dir for s in specs):  # one process per run folder
        return train_locked(cfg, specs)


def train_locked(cfg: DictConfig, specs: list[RunSpec]) -> dict[str, dict]:
    plans = check_run_folders(cfg, specs, locked=True)  # again, now that no other process can change them
    summary: dict[str, dict] = {}
    for s in specs:
        if plans[s.name] == "skip":
            st = read_status(s.dir, required=("global_step",))
            summary[s.name] = {"status": "finished (skipped)", "score_last100": st.get("score_last100", math.nan),
                               "global_step": st["global_step"], "dir": str(s.dir)}
    specs = [s for s in specs if s.name not in summary]
    if specs:
        torch.set_num_threads(cfg.torch_threads)
        trainer = build_trainer(cfg, specs)
        trainer.start(bool(cfg.resume))
        summary.update(trainer.train())
    return summary


def least_memory(cfg: DictConfig, runs: int) -> int:
    """Bytes a population needs at the least, whatever its environment: its R × N environments (10 kB each, less than
    any Gymnasium env takes), its rollout ((T + 1) × R × N rows of ten 8-byte numbers) and its networks (R copies of
    the hidden layers' weights in float32, with their gradients and two Adam moments)."""
    envs = runs * cfg.env.num_envs
    widths = list(cfg.model.hidden)
    weights = 2 * sum(a * b for a, b in zip(widths, widths[1:])) + 2 * sum(widths)
    return envs * 10_000 + (cfg.algo.num_steps + 1) * envs * 80 + runs * weights * 4 * 4


def sizes(cfg: DictConfig, runs: int) -> str:
    return (f"{runs} run(s) × env.num_envs={cfg.env.num_envs}, model.hidden={list(cfg.model.hidden)}, "
            f"algo.num_steps={cfg.algo.num_steps}")


def check_memory(cfg: DictConfig, runs: int) -> None:
    """More than this machine's memory holds (``least_memory``: environments × runs, the network's widths, the
    rollout) is a ConfigError naming the sizes, before any folder is made."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if least_memory(cfg, runs) > memory:
        raise ConfigError(f"{sizes(cfg, runs)} need more memory than this machine has ({memory / 2**30:.0f} GiB)")


def build_trainer(cfg: DictConfig, specs: list[RunSpec]) -> PopulationTrainer:
    """The population's trainer; where ``check_memory``'s estimate was too low, an allocation that fails is a
    ConfigError naming the sizes, not a traceback."""
    try:
        return PopulationTrainer(cfg, specs)
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and "alloc" not in str(e).lower():
            raise
        raise ConfigError(f"{sizes(cfg, len(specs))} need more memory than this machine has") from None


def resume_command(cfg: DictConfig) -> str:
    """The command that continues this launch's runs: its own overrides, resume=true and the run folder."""
    from hydra.core.hydra_config import HydraConfig

    overrides = ["<the same overrides>"]
    if HydraConfig.initialized():
        drop = ("resume", "run_root", "hydra.run.dir")
        overrides = [shlex.quote(o) for o in HydraConfig.get().overrides.task
                     if o.split("=", 1)[0].lstrip("+~") not in drop]
    return " ".join(["ppo-bench", *overrides, "resume=true", f"run_root={shlex.quote(str(Path(cfg.run_root).resolve()))}"])
