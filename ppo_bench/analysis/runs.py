"""Runs on disk: find them under run roots, read their TensorBoard event files, name the ones missing.

A run folder is ``<run_root>/<env id>/<setting>/seed<k>/`` (``ppo_bench.rl.engine.population``) holding the
event file(s), ``config.yaml`` and ``status.json``. Episode returns are read as TensorBoard shows them, every
point kept (``ppo_bench.common.tblog.read_scalars``; TensorBoard's own reader keeps a 10,000-point sample per tag).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypeVar

import numpy as np
from omegaconf import OmegaConf

from ppo_bench.analysis.scores import SCORE_EPISODES, run_score
from ppo_bench.common import tblog
from ppo_bench.common.errors import ConfigError, os_error_line
from ppo_bench.common.identity import fingerprint, flatten, read_config, read_identity, training_keys
from ppo_bench.common.run_folder import STATUS, read_status
from ppo_bench.rl.engine.config import NOT_IDENTITY, migrate_config, migrate_keys

RETURN_TAG = "charts/episodic_return"
SEED_DIR = re.compile(r"seed(\d+)$")


@dataclass
class Run:
    env: str
    setting: str
    seed: int
    dir: Path
    status: str  # finished | failed | running | started (events but no status.json yet) | damaged (not scored)
    objective: dict = field(default_factory=dict)
    global_step: int = 0
    total_timesteps: int | None = None
    error: str | None = None  # why it failed, or why it is damaged
    fingerprint: str | None = None  # its identity's
    content: str | None = None  # what it recorded (``RunRecord.content``): the same run found twice records the same
    wall_s: float = float("nan")  # training wall time of its population process, summed over resumes
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # env steps at episode end
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))  # total reward of each episode

    @property
    def key(self) -> tuple[str, str, int]:
        return self.env, self.setting, self.seed

    @property
    def name(self) -> str:
        return f"{self.env}/{self.setting}/seed{self.seed}"


def read_scalars(path: Path, tags: list[str], damage: list | None = None) -> dict[str, tblog.Scalars]:
    """tag → its points (``tblog.Scalars``: steps, values, wall times) for each of the tags, every point kept, from
    an event file or a run folder; empty arrays for a tag the run never logged. The files are read once for all
    the tags, as TensorBoard shows them (``ppo_bench.common.tblog.read_scalars``: purge marks honoured; every
    record's CRCs checked, where a file stops early appended to ``damage``)."""
    found = tblog.read_scalars(path, tags, damage)
    return {tag: found.get(tag, tblog.Scalars.empty()) for tag in tags}


def read_episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every episode's (end step, return) of a run, over all its event files."""
    s = read_scalars(run_dir, [RETURN_TAG])[RETURN_TAG]
    return s.steps, s.values


ITERATION_TAG = "perf/sps"  # logged by every algorithm at the end of every iteration, at the run's step count


@dataclass
class RunRecord:
    """A run folder as read, every number verified: its settings (config.yaml against identity.json), its status,
    its scalars (event files against their CRCs; the score and the last step against what status.json records).
    ``damage`` says in one line why its numbers are not to be used (None: they are)."""

    dir: Path
    config: dict | None  # the resolved config, nested, in today's key names (None: unreadable)
    flat: dict[str, Any]  # the same, flattened ('algo.lr'); from identity.json where config.yaml is damaged
    fingerprint: str | None  # its identity's (``ppo_bench.common.identity.fingerprint``)
    status: dict | None
    scalars: dict[str, tblog.Scalars]
    damage: str | None = None

    @property
    def content(self) -> str:
        """A digest of what the run recorded (its status.json and every point of the scalars read): two folders
        with the identity and seed of one run are copies of it where this agrees, and two runs where it does not."""
        h = hashlib.sha256(json.dumps(self.status, sort_keys=True, default=str).encode())
        for tag in sorted(self.scalars):
            s = self.scalars[tag]
            for part in (tag.encode(), np.ascontiguousarray(s.steps, np.int64).tobytes(),
                         np.ascontiguousarray(s.values, np.float64).tobytes()):
                h.update(len(part).to_bytes(8, "little") + part)
        return h.hexdigest()


def score_agrees(returns: np.ndarray, recorded: Any) -> bool:
    """Whether the mean of a run's last 100 logged returns is the score its status.json recorded: equal up to the
    float32 rounding the event file stores each return with (2^-24 relative, summed in another order)."""
    window = np.asarray(returns, dtype=np.float64)[-SCORE_EPISODES:]
    if recorded is None or not math.isfinite(recorded):
        return not len(window)
    if not len(window):
        return False
    return abs(float(window.mean()) - recorded) <= 2.0 ** -22 * float(np.abs(window).max()) + 1e-9


def cross_check(rec: RunRecord) -> str | None:
    """Where a finished run's event files disagree with its status.json, or None: the number of episodes it
    scored and their score, and the step of its last iteration."""
    st = rec.status
    if not st or st["status"] != "finished":
        return None
    returns = rec.scalars.get(RETURN_TAG, tblog.Scalars.empty()).values
    if "episodes_scored" in st and min(len(returns), SCORE_EPISODES) != st["episodes_scored"]:
        return (f"its event files hold {len(returns)} episodes where its status.json scored the last "
                f"{st['episodes_scored']}: episodes are missing")
    if "score_last100" in st and not score_agrees(returns, st["score_last100"]):
        return (f"its event files give a score of {run_score(returns):.6g}, its status.json {st['score_last100']!r}: "
                "one of them is damaged")
    steps = rec.scalars.get(ITERATION_TAG, tblog.Scalars.empty()).steps
    if len(steps) and int(steps.max()) != st["global_step"]:
        return (f"its event files end at step {int(steps.max())}, its status.json at {st['global_step']}: the event "
                "files are cut short")
    return None


def read_run(run_dir: Path, tags: Sequence[str] = ()) -> RunRecord:
    """A run folder's settings, status and scalars (``RETURN_TAG`` and ``tags``), verified (``RunRecord``). Never
    raises for what is in the folder: what cannot be read or does not agree is its ``damage``."""
    problems: list[str] = []
    config, flat, fp = None, {}, None
    try:
        config = migrate_config(read_config(run_dir, NOT_IDENTITY, migrate_keys))
        flat = migrate_keys(flatten(config))
        fp = fingerprint(training_keys(flat, NOT_IDENTITY))
        stored = read_identity(run_dir)
        length = stored.get("total_timesteps") if stored else flat.get("total_timesteps")
        if length != flat.get("total_timesteps"):  # the one setting outside the fingerprint, written in both files
            raise ConfigError(f"{run_dir}/config.yaml says total_timesteps={flat.get('total_timesteps')!r}, its "
                              f"identity.json {length!r}: one of them was changed or damaged")
    except ConfigError as e:
        problems.append(str(e))
        try:  # the settings to name the run by, where its identity is whole
            stored = read_identity(run_dir)
            if stored is not None:
                flat, fp = migrate_keys(stored["config"]), stored["fingerprint"]
        except ConfigError:
            pass
    status = read_status(run_dir, required=("global_step",))
    if status is None and (run_dir / STATUS).exists():
        problems.append(f"{run_dir / STATUS} is damaged")
    damage: list[tblog.Damage] = []
    try:
        scalars = read_scalars(run_dir, list(dict.fromkeys([RETURN_TAG, ITERATION_TAG, *tags])), damage)
    except OSError as e:
        scalars = {}
        problems.append(f"an event file is unreadable ({os_error_line(e) or e})")
    last_file = (tblog.event_files(run_dir) or [None])[-1]
    for d in damage:
        # a record cut short at the end of a file that a later file follows is what a process killed mid-record
        # leaves, and the resumed run's purge hides its events past the checkpoint anyway; at the end of a run
        # being written it is a record not yet whole; anywhere else it is damage
        if d.kind == "cut" and (d.path != last_file or status is None or status["status"] == "running"):
            continue
        problems.append(str(d))
    rec = RunRecord(run_dir, config, flat, fp, status, scalars)
    if not problems:
        problems += [p for p in [cross_check(rec)] if p]
    rec.damage = "; ".join(problems) or None
    return rec


def load_run(run_dir: Path) -> Run | None:
    m = SEED_DIR.match(run_dir.name)
    if not m or not run_dir.is_dir():
        return None
    status_path, config_path = run_dir / STATUS, run_dir / "config.yaml"
    if not status_path.exists() and not config_path.exists() and not any(run_dir.glob("events.out.tfevents.*")):
        return None
    rec = read_run(run_dir)
    run = Run(env=run_dir.parent.parent.name, setting=run_dir.parent.name, seed=int(m.group(1)), dir=run_dir,
              status="started", fingerprint=rec.fingerprint, content=rec.content)
    cfg = rec.config
    if cfg is not None:
        # an algorithm other than PPO (Figure 3's) has no surrogate objective: its config's is null
        run.objective = dict(cfg["objective"]) if isinstance(cfg.get("objective"), dict) else {}
        total = cfg.get("total_timesteps")
        run.total_timesteps = int(total) if isinstance(total, int) else None
    st = rec.status
    if st:
        run.status, run.global_step, run.error = st["status"], int(st["global_step"]), st.get("error")
        run.wall_s = float(st.get("wall_s", float("nan")))
    ret = rec.scalars.get(RETURN_TAG, tblog.Scalars.empty())
    run.steps, run.returns = ret.steps, ret.values
    if rec.damage:
        run.status, run.error = "damaged", rec.damage
        print(f"warning: run {run_dir} is damaged, not scored: {rec.damage}", file=sys.stderr, flush=True)
    return run


Counted = TypeVar("Counted")


def count_once(runs: Sequence[Counted]) -> tuple[list[Counted], list[str]]:
    """The runs with each run counted once, and a note for every folder left out. A run is its identity and seed
    (``fingerprint``, ``seed``, and ``env``, which a run's identity holds and a folder's name too; a damaged run, whose identity cannot be trusted, is always kept: it is shown as
    damaged, never scored). Folders of one identity and seed that recorded the same (``content``) are the same run
    found twice: counted once. Folders that recorded different things are different runs claiming one identity and
    seed: flagged, and only one is counted (a finished one before others, else the first found). Used by every
    report (Table 1's ``find_runs``, the sweep report, Figure 3, the Implementation-Matters report)."""
    rank = {"finished": 0, "failed": 1, "running": 2, "started": 3}
    groups: dict[tuple, list] = {}
    for r in runs:
        if r.status != "damaged" and r.fingerprint is not None:
            groups.setdefault((r.fingerprint, r.env, r.seed), []).append(r)
    left_out, notes = set(), []
    for members in groups.values():
        kept = min(members, key=lambda r: rank.get(r.status, len(rank)))  # the first of the best status
        for r in members:
            if r is kept:
                continue
            left_out.add(id(r))
            if r.content == kept.content:
                notes.append(f"{r.dir} is the same run as {kept.dir} (identity, seed and what they recorded alike); "
                             "counted once")
            else:
                notes.append(f"{r.dir} is another run claiming the identity and seed of {kept.dir} (their status.json "
                             f"or event files differ: a copy taken at another point, or a run whose identity.json "
                             f"was copied); only {kept.dir} is counted")
    return [r for r in runs if id(r) not in left_out], notes


def find_runs(roots: list[Path], notes: list[str] | None = None) -> list[Run]:
    """Every run folder under the roots (``<root>/<env>/<setting>/seed<k>``), each run counted once
    (``count_once``); two different runs of one folder name under two roots are counted once too, from the first
    that finished. Each folder left out gets a note (appended to ``notes``; without the list, a warning line)."""
    loaded: list[Run] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"run root {root} is not a folder")
        loaded += [run for d in sorted(root.glob("*/*/seed*")) if (run := load_run(d)) is not None]
    runs, said = count_once(loaded)
    found: dict[tuple, Run] = {}
    for run in runs:
        old = found.get(run.key)
        if old is not None:
            kept = old if old.status == "finished" else run
            said.append(f"{run.name} is under two run roots, {old.dir} and {run.dir}, with different settings or "
                        f"records; counted once, from {kept.dir}")
            if kept is old:
                continue
        found[run.key] = run
    for note in said:
        if notes is not None:
            notes.append(note)
        else:
            print(f"warning: {note}", file=sys.stderr, flush=True)
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
        elif r.status == "damaged":
            out.append((*key, f"damaged, not scored: {r.error}"))
    return out
