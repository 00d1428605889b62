"""Runs on disk: find them under run roots, read their TensorBoard event files, name the ones missing.

A run folder is ``<run_root>/<env id>/<setting>/seed<k>/`` (``ppo_bench.rl.engine.population``) holding the
event file(s), ``config.yaml`` and ``status.json``. Episode returns are read as TensorBoard shows them, every
point kept (``ppo_bench.common.tblog.read_scalars``; TensorBoard's own reader keeps a 10,000-point sample per tag).
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ppo_bench.common import tblog
from ppo_bench.common.atomic import read_json
from ppo_bench.rl.engine.config import migrate_config

RETURN_TAG = "charts/episodic_return"
SEED_DIR = re.compile(r"seed(\d+)$")


@dataclass
class Run:
    env: str
    setting: str
    seed: int
    dir: Path
    status: str  # finished | failed | running | started (events but no status.json yet)
    objective: dict = field(default_factory=dict)
    global_step: int = 0
    total_timesteps: int | None = None
    error: str | None = None
    wall_s: float = float("nan")  # training wall time of its population process, summed over resumes
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # env steps at episode end
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))  # total reward of each episode

    @property
    def key(self) -> tuple[str, str, int]:
        return self.env, self.setting, self.seed

    @property
    def name(self) -> str:
        return f"{self.env}/{self.setting}/seed{self.seed}"


def read_scalars(path: Path, tags: list[str]) -> dict[str, tblog.Scalars]:
    """tag → its points (``tblog.Scalars``: steps, values, wall times) for each of the tags, every point kept, from
    an event file or a run folder; empty arrays for a tag the run never logged. The files are read once for all
    the tags, as TensorBoard shows them (``ppo_bench.common.tblog.read_scalars``: purge marks honoured)."""
    found = tblog.read_scalars(path, tags)
    return {tag: found.get(tag, tblog.Scalars.empty()) for tag in tags}


def read_episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every episode's (end step, return) of a run, over all its event files."""
    s = read_scalars(run_dir, [RETURN_TAG])[RETURN_TAG]
    return s.steps, s.values


def load_run(run_dir: Path) -> Run | None:
    m = SEED_DIR.match(run_dir.name)
    if not m or not run_dir.is_dir():
        return None
    status_path, config_path = run_dir / "status.json", run_dir / "config.yaml"
    if not status_path.exists() and not config_path.exists() and not any(run_dir.glob("events.out.tfevents.*")):
        return None
    run = Run(env=run_dir.parent.parent.name, setting=run_dir.parent.name, seed=int(m.group(1)), dir=run_dir,
              status="started")
    if config_path.exists():
        cfg = migrate_config(OmegaConf.to_container(OmegaConf.load(config_path)))  # older runs: today's names
        # an algorithm other than PPO (Figure 3's) has no surrogate objective: its config's is null
        run.objective = dict(cfg["objective"]) if cfg.get("objective") is not None else {}
        run.total_timesteps = int(cfg["total_timesteps"])
    st = read_json(status_path)  # a damaged status reads as absent: the run shows as started, with a warning
    if st:
        run.status, run.global_step, run.error = st["status"], int(st["global_step"]), st.get("error")
        run.wall_s = float(st.get("wall_s", float("nan")))
    run.steps, run.returns = read_episodes(run_dir)
    return run


def find_runs(roots: list[Path]) -> list[Run]:
    """Every run folder under the roots; a run found under two roots is taken from the first that finished it."""
    found: dict[tuple, Run] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"run root {root} is not a folder")
        for d in sorted(root.glob("*/*/seed*")):
            run = load_run(d)
            if run is None:
                continue
            old = found.get(run.key)
            if old is not None:
                warnings.warn(f"{run.name} is under two run roots: {old.dir} and {run.dir}; "
                              f"using {'the first' if old.status == 'finished' else 'the second'}")
                if old.status == "finished":
                    continue
            found[run.key] = run
    return list(found.values())


@dataclass
class Grid:
    """The runs a sweep asks for: env ids × objective settings × seeds."""

    envs: list[str]
    settings: list[str]
    seeds: list[int]
    objectives: dict[str, dict] = field(default_factory=dict)  # setting name → {name, **hparams}

    def keys(self) -> list[tuple[str, str, int]]:
        return list(itertools.product(self.envs, self.settings, self.seeds))


def experiment_grid(name: str) -> Grid:
    """The grid of ``conf/experiment/<name>.yaml``: its env sweep, ``population.objectives`` and ``.seeds``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ppo_bench.rl.algorithms.ppo.objectives import resolve_objective
    from ppo_bench.rl.engine.config import CONF_DIR, register_configs
    from ppo_bench.rl.engine.population import setting_name

    if not (CONF_DIR / "experiment" / f"{name}.yaml").exists():
        allowed = ", ".join(sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
        raise FileNotFoundError(f"experiment={name!r} has no conf/experiment/{name}.yaml; allowed: {allowed}")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    sweep = cfg.hydra.sweeper.params.get("env") if cfg.hydra.sweeper.get("params") else None
    if sweep is None:
        env_ids = [cfg.env.id]
    else:
        override = OverridesParser.create().parse_overrides([f"env={sweep}"])[0]
        presets = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        env_ids = [OmegaConf.load(CONF_DIR / "env" / f"{p}.yaml").id for p in presets]
    objectives = [resolve_objective(o) for o in (cfg.population.objectives or [cfg.objective])]
    seeds = list(cfg.population.seeds) if cfg.population.seeds is not None else [cfg.seed]
    return Grid(env_ids, [setting_name(o) for o in objectives], seeds, {setting_name(o): o for o in objectives})


def experiment_jobs(name: str) -> list[dict[str, str]]:
    """The Hydra jobs of ``conf/experiment/<name>.yaml`` in the order a multirun launches them: one
    {key: value} per job, e.g. {"env": "hopper", "algo": "ppo"} (Hydra's BasicSweeper: the cartesian product of
    ``hydra.sweeper.params`` in the order they are listed, the last varying fastest). [{}] without a sweep."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ppo_bench.rl.engine.config import CONF_DIR, register_configs

    if not (CONF_DIR / "experiment" / f"{name}.yaml").exists():
        allowed = ", ".join(sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
        raise FileNotFoundError(f"experiment={name!r} has no conf/experiment/{name}.yaml; allowed: {allowed}")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params") or {}
    if not params:
        return [{}]
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    return [dict(o.split("=", 1) for o in job) for job in batch]


def experiment_env_presets(name: str) -> list[str]:
    """The conf/env preset names an experiment sweeps (for the random-policy script)."""
    from ppo_bench.rl.engine.config import CONF_DIR

    grid = experiment_grid(name)
    by_id = {OmegaConf.load(p).id: p.stem for p in (CONF_DIR / "env").glob("*.yaml")}
    return [by_id[e] for e in grid.envs]


def found_grid(runs: list[Run]) -> Grid:
    """Without an experiment to compare against: every env × setting × seed seen anywhere."""
    objectives = {r.setting: r.objective for r in runs if r.objective}
    return Grid(sorted({r.env for r in runs}), sorted({r.setting for r in runs}), sorted({r.seed for r in runs}),
                objectives)


def incomplete(runs: list[Run], grid: Grid) -> list[tuple[str, str, int, str]]:
    """(env, setting, seed, why) for every run of the grid that is not finished."""
    by_key = {r.key: r for r in runs}
    out = []
    for key in grid.keys():
        r = by_key.get(key)
        if r is None:
            out.append((*key, "missing: no run folder"))
        elif r.status == "failed":
            out.append((*key, f"failed at step {r.global_step}: {r.error or 'see its status.json'}"))
        elif r.status == "running":
            total = f" of {r.total_timesteps}" if r.total_timesteps else ""
            out.append((*key, f"unfinished: checkpoint at step {r.global_step}{total} (resume=true continues it)"))
        elif r.status == "started":
            out.append((*key, "unfinished: started, no checkpoint yet"))
    return out
