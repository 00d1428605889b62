"""Launching an LM run: validate the config, build the run of its algorithm, train it or skip it when finished.

What ``ppo-bench-llm`` does after Hydra composed the config; also what a script or a test calls to train from a
config of its own (``train_from_config``, ``build_trainer``). The built-in algorithms (``ppo_bench.llm.algorithms``)
and the config's ``extensions`` (``ppo_bench.common.extensions``) are imported before the config is checked.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

import ppo_bench.llm.algorithms  # noqa: F401 — registers the built-in algorithms
from ppo_bench.common.atomic import read_json
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.extensions import import_extensions
from ppo_bench.common.identity import read_identity, stored_keys
from ppo_bench.common.run_folder import REFUSED_REMEDY, RunLocks, fresh_start_problem, has_checkpoint, read_status
from ppo_bench.llm.harness import config as harness_config
from ppo_bench.llm.harness.config import NOT_IDENTITY, run_name
from ppo_bench.llm.harness.registry import lm_algorithm
from ppo_bench.llm.harness.run import LMRun, check_run_identity


def validate(cfg: DictConfig) -> None:
    """Import the config's extensions, then every check that needs no tokenizer or model (``harness.config.validate``):
    a ConfigError naming the option."""
    import_extensions(cfg.get("extensions") or ())
    harness_config.validate(cfg)


def build_trainer(cfg: DictConfig) -> LMRun:
    """The run of ``cfg.algo.name``: validated, then tokenizer and prompt-length check, then the weights."""
    validate(cfg)
    return lm_algorithm(cfg.algo.name).build(cfg, Path(cfg.run_root) / run_name(cfg))


def run_or_skip(cfg: DictConfig, progress: bool = False) -> dict:
    """One run: skipped (with its summary) when it already finished under the same settings and resume
    is on (all its steps, or all of ``max_wall_s``); refused, before any weights load, when resume is on and its
    folder holds a run trained under other settings, or when another process holds its folder; else built and
    trained."""
    validate(cfg)
    run_dir = Path(cfg.run_root) / run_name(cfg)
    with RunLocks([run_dir]):  # one process per run folder, from the first look at it to the last write
        return run_or_skip_locked(cfg, run_dir, progress)


def run_or_skip_locked(cfg: DictConfig, run_dir: Path, progress: bool) -> dict:
    check_run_folder(cfg, run_dir)
    status = read_status(run_dir, required=("step",))
    finished = bool(status) and status["status"] == "finished"
    if cfg.resume and finished:
        summary = read_json(run_dir / "summary.json") or {}
        stored_budget = (summary.get("config") or {}).get("max_wall_s")
        spent = (summary.get("stopped_by") == "max_wall_s" and cfg.max_wall_s is not None and stored_budget is not None
                 and stored_budget >= cfg.max_wall_s)  # stopped by a budget at least as large as the one asked for now
        if summary.get("steps", 0) >= cfg.algo.steps or spent:
            return {**summary, "skipped": True, "run_dir": str(run_dir)}
        if not has_checkpoint(run_dir):
            raise ConfigError(f"{run_dir} holds a finished run of {summary.get('steps', '?')} steps without a checkpoint "
                              f"to extend it from; it is not replaced; {REFUSED_REMEDY}")
    return {**build_trainer(cfg).train(progress=progress), "run_dir": str(run_dir)}


def check_run_folder(cfg: DictConfig, run_dir: Path) -> None:
    """Before any weights load: what a launch may do with the run's folder. Nothing a checkpointed or finished run
    holds is replaced (``resume=false`` over it is refused: a fresh start clears only what a process that died
    before its first checkpoint left); a run's files without an identity are not adopted; a run is continued or
    skipped only under its own settings (``check_run_identity``), and its length (``algo.steps``) only raised."""
    checkpointed = has_checkpoint(run_dir)
    status = read_status(run_dir, required=("step",))
    if not cfg.resume or not (checkpointed or status):
        problem = fresh_start_problem(run_dir)
        if problem:
            raise ConfigError(f"{problem}; {REFUSED_REMEDY}")
        return
    if stored_keys(run_dir, NOT_IDENTITY) is None:
        raise ConfigError(f"{run_dir} holds a run's files but no identity.json or config.yaml to say whose; it is not "
                          f"adopted; {REFUSED_REMEDY}")
    check_run_identity(run_dir, cfg)
    stored = read_identity(run_dir) or {}
    length = stored.get("steps")
    finished = bool(status) and status["status"] == "finished"
    if checkpointed and not finished and isinstance(length, int) and cfg.algo.steps < length:
        raise ConfigError(f"run {run_dir} was launched for algo.steps={length}; algo.steps={cfg.algo.steps} would record "
                          f"it as a shorter run: it may only be raised (to extend the run); relaunch with "
                          f"algo.steps={length} or more, or choose another run_name")


def train_from_config(cfg: DictConfig, progress: bool = False) -> dict:
    """One run of any algorithm (see run_or_skip)."""
    return run_or_skip(cfg, progress)
