"""Launching a population: validate the config, name its runs, check their folders, train them.

What ``ppo-bench`` does after Hydra composed the config; also what a script or a test calls to train from a
config of its own (``train_from_config``). The built-in algorithms (``ppo_bench.rl.algorithms``) and the
config's ``extensions`` are imported before the config is checked.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import torch
from omegaconf import DictConfig

import ppo_bench.rl.algorithms  # noqa: F401 — registers the built-in algorithms
from ppo_bench.common.atomic import read_json
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.extensions import import_extensions
from ppo_bench.common.identity import IDENTITY
from ppo_bench.common.run_folder import PREVIOUS, RunLocks
from ppo_bench.rl.engine.config import register_configs, validate
from ppo_bench.rl.engine.population import RunSpec, expand
from ppo_bench.rl.engine.trainer import CHECKPOINT, STATUS, PopulationTrainer, check_run_identity

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
    return any((run_dir / f).exists() for f in (CHECKPOINT, PREVIOUS, STATUS, IDENTITY, "config.yaml"))


def check_run_folders(cfg: DictConfig, specs: list[RunSpec]) -> None:
    """Before anything is built or written: resume=true must find runs, and every run it continues must have
    been trained with these settings (``ppo_bench.common.identity``)."""
    if cfg.resume is True and not any(started(s.dir) for s in specs):
        where = specs[0].dir if len(specs) == 1 else f"{cfg.run_root} (e.g. {specs[0].dir})"
        raise ConfigError(f"resume=true but no run of this launch exists in {where}; check run_root / "
                          "hydra.run.dir, or launch with resume=auto (start what is missing) or resume=false")
    if cfg.resume:
        for s in specs:  # a folder with an identity: with a checkpoint, or finished and carried without one
            check_run_identity(cfg, s)


def train_from_config(cfg: DictConfig) -> dict[str, dict]:
    """Validate, build and train every run the config names; returns a summary per run."""
    specs = population_specs(cfg)
    check_run_folders(cfg, specs)  # read-only: a refused launch leaves no trace
    with RunLocks(s.dir for s in specs):  # one process per run folder
        return train_locked(cfg, specs)


def train_locked(cfg: DictConfig, specs: list[RunSpec]) -> dict[str, dict]:
    check_run_folders(cfg, specs)  # again, now that no other process can change them
    summary: dict[str, dict] = {}
    if cfg.resume:
        per_iter = cfg.env.num_envs * cfg.algo.num_steps
        needed = math.ceil(cfg.total_timesteps / per_iter) * per_iter
        for s in specs:
            st = read_json(s.dir / STATUS)
            # finished means finished at this length: a raised total_timesteps continues the run
            if st and st["status"] == "finished" and st["global_step"] >= needed:
                summary[s.name] = {"status": "finished (skipped)", "score_last100": st["score_last100"],
                                   "global_step": st["global_step"], "dir": str(s.dir)}
        specs = [s for s in specs if s.name not in summary]
    if specs:
        torch.set_num_threads(cfg.torch_threads)
        trainer = PopulationTrainer(cfg, specs)
        trainer.start(bool(cfg.resume))
        summary.update(trainer.train())
    return summary


def resume_command(cfg: DictConfig) -> str:
    """The command that continues this launch's runs: its own overrides, resume=true and the run folder."""
    from hydra.core.hydra_config import HydraConfig

    overrides = ["<the same overrides>"]
    if HydraConfig.initialized():
        drop = ("resume", "run_root", "hydra.run.dir")
        overrides = [shlex.quote(o) for o in HydraConfig.get().overrides.task
                     if o.split("=", 1)[0].lstrip("+~") not in drop]
    return " ".join(["ppo-bench", *overrides, "resume=true", f"run_root={shlex.quote(str(Path(cfg.run_root).resolve()))}"])
