"""A hyperparameter search whose trials train together: Optuna's ask-and-tell, one population per batch.

A batch of trials is asked of the study; each trial is a setting of the search space trained at every seed of
``seeds`` on every environment of ``envs`` (its *members*). The members that share an environment and the values
of the keys that are not member keys (``ppo_bench.tune.space``) form one ``PopulationTrainer``; the populations of a
batch step in turn in this one process. A member is the same run, bit for bit, whatever its neighbours do, so a
trial's result does not depend on the batch it was trained in.

Each trial is evaluated ``evaluations`` times, at equally spaced numbers of environment steps: its value is the
score (mean return of the last 100 episodes) of each of its runs when it passed that step, normalised per
environment as Table 1 does (the random policy 0, a reference score 1) and averaged over environments and seeds.
Each evaluation is reported to the study, and the study's pruner (median, successive halving, Hyperband) may stop
the trial there: its members stop (status "pruned"), the others train on. The last evaluation, at the end of
training, is the trial's value.

The study is an SQLite file beside the runs (``<study>/study.db``, runs in ``<study>/trials/<number>/``). A killed
tuner, launched again with the same command, trains the trials it left running from their runs' checkpoints and
goes on; the evaluations a run passed are kept in its trial's user attributes, and every trial's sampler is seeded by
(seed, trial number), so the resumed study asks and finds what the uninterrupted one would have.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.hydra_cli import hydra_error_line
from ppo_bench.common.paths import CONF_DIR
from ppo_bench.common.preemption import Interrupted, StopRequest
from ppo_bench.common.run_folder import RunLocks
from ppo_bench.rl.engine.population import RunSpec
from ppo_bench.rl.engine.registry import get_algorithm
from ppo_bench.rl.engine.trainer import PopulationTrainer
from ppo_bench.rl.launch import population_specs
from ppo_bench.tune.space import SearchSpace, group_key, load_space, override_text, trained_value

STUDY_DB = "study.db"
STUDY_NAME = "ppo-bench-tune"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "hyperband", "none")


@dataclass
class TuneSettings:
    """What a study is: ppo-bench-tune's options (``ppo_bench.tune.cli``)."""

    study: str  # the folder: study.db, trials/<number>/<env>/<setting>/seed<k>, best.yaml, figures
    overrides: list[str] = field(default_factory=list)  # ppo-bench's, for every trial (env=..., total_timesteps=...)
    space: str | None = None  # conf/tune/<name>.yaml or a file; default: the algorithm's
    envs: list[str] = field(default_factory=list)  # env group options or Gymnasium ids; default: the config's env
    seeds: list[int] = field(default_factory=lambda: [0])
    trials: int = 20  # in all, whatever their end (complete, pruned, failed)
    batch: int = 8  # trials trained together
    evaluations: int = 10  # per trial, equally spaced in steps; the last at the end of training
    sampler: str = "tpe"
    startup_trials: int = 10  # random trials before TPE models the results; trials before the median pruner prunes
    pruner: str = "median"
    seed: int = 0  # the sampler's
    references: dict[str, float] = field(default_factory=dict)  # env id → the score normalised to 1

    def identity(self) -> dict[str, Any]:
        """What a resumed study must be launched with again: the number of trials and the batch may change, and
        the overrides that change nothing trained (progress, checkpoint_every, compile, ...)."""
        from ppo_bench.rl.engine.hparams import OPERATIONAL

        overrides = [o for o in self.overrides if o.split("=", 1)[0].lstrip("+~") not in OPERATIONAL]
        return {"overrides": overrides, "space": self.space, "envs": list(self.envs),
                "seeds": list(self.seeds), "evaluations": self.evaluations, "sampler": self.sampler,
                "startup_trials": self.startup_trials, "pruner": self.pruner, "seed": self.seed,
                "references": dict(sorted(self.references.items()))}


def compose(overrides: list[str]) -> DictConfig:
    """ppo-bench's config with these overrides (Hydra's compose: the same tree and checks as the command)."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def env_override(env: str) -> str:
    """``env=hopper`` for a config group option, ``env.id=<id>`` for any other Gymnasium id."""
    return f"env={env}" if (CONF_DIR / "env" / f"{env}.yaml").is_file() else f"env.id={env}"


@dataclass
class Normaliser:
    """Table 1's normalisation of one environment's scores: the random policy 0, the reference 1; or none."""

    random: float | None = None
    reference: float | None = None

    def __call__(self, score: float) -> float:
        if self.random is None:
            return score
        return (score - self.random) / (self.reference - self.random)

    def describe(self) -> str:
        return "raw score" if self.random is None else f"random {self.random:g} -> 0, reference {self.reference:g} -> 1"


def normalisers(env_ids: list[str], references: dict[str, float]) -> dict[str, Normaliser]:
    """Per environment: the random policy's score (results/random_scores.csv) and a reference (given, or the
    final score of baselines' PPO2 at 1M steps); one environment alone may go unnormalised."""
    from ppo_bench.analysis.random_policy import load_random_scores
    from ppo_bench.analysis.scores import BASELINES_PPO2_CLIP
    from ppo_bench.common.paths import RANDOM_SCORES

    randoms = load_random_scores(RANDOM_SCORES)
    unknown = sorted(set(references) - set(env_ids))
    if unknown:
        raise ConfigError(f"--reference {unknown[0]}: not an environment of this study ({', '.join(env_ids)})")
    out = {}
    for env_id in env_ids:
        reference = references.get(env_id, BASELINES_PPO2_CLIP.get(env_id))
        random = randoms.get(env_id)
        if random is None or reference is None:
            if len(env_ids) > 1:
                missing = "random-policy score (scripts/random_scores.py)" if random is None else "reference score"
                raise ConfigError(f"{env_id} has no {missing}: an objective over several environments normalises each "
                                  f"(random 0, reference 1){'; pass --reference ' + env_id + '=SCORE' if random is not None else ''}")
            out[env_id] = Normaliser()
        elif not reference > random:
            raise ConfigError(f"--reference {env_id}={reference:g} must exceed the random policy's score {random:g}")
        else:
            out[env_id] = Normaliser(random, reference)
    return out


def sampler_for(name: str, seed: int, number: int, startup: int):
    """The sampler that suggests trial ``number``: seeded by (seed, number), so that a study resumed in another
    process suggests what an uninterrupted one would have."""
    import optuna

    trial_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
    if name == "random":
        return optuna.samplers.RandomSampler(seed=trial_seed)
    return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup, multivariate=True)


def make_pruner(name: str, startup: int, grid: list[int]):
    """rl-baselines3-zoo's choices: no pruning in the first third of a trial's evaluations (median)."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=grid[len(grid) // 3] if len(grid) > 2 else 0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=grid[0], reduction_factor=4)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=grid[0], max_resource=grid[-1], reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest(trial, name: str, distribution) -> Any:
    """Trial's value of ``name`` (its stored value if it has one: a resumed trial)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(name, distribution.choices)


@dataclass(eq=False)
class Member:
    """One run of a trial: run r of a population."""

    trainer: PopulationTrainer
    r: int
    env_id: str
    key: str  # '<env>/seed<k>': the run within its trial

    @property
    def step(self) -> int:
        return int(self.trainer.iteration[self.r]) * self.trainer.N * self.trainer.T


@dataclass(eq=False)
class TrialRuns:
    trial: Any  # optuna.trial.Trial
    params: dict[str, Any]
    reported: set[int] = field(default_factory=set)  # the steps of the evaluations in the study
    members: list[Member] = field(default_factory=list)
    done: bool = False


class Tuner:
    def __init__(self, settings: TuneSettings, pruner=None):
        """pruner: an Optuna pruner of one's own in place of ``settings.pruner``'s (a test's)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.s = settings
        self.study_dir = Path(settings.study).resolve()
        _check_counts(settings)
        base = compose([*settings.overrides, f"run_root={self.study_dir}"])
        if base.population.objectives is not None or base.population.seeds is not None:
            raise ConfigError("population.* belongs to the tuner: a trial's seeds are --seeds, its setting the space's")
        self.env_overrides = [env_override(e) for e in settings.envs] or [None]
        self.base = [base if o is None else compose([*settings.overrides, o, f"run_root={self.study_dir}"])
                     for o in self.env_overrides]
        for cfg in self.base:
            population_specs(cfg)  # the base settings validate, or one line names what is wrong
        self.env_ids = [cfg.env.id for cfg in self.base]
        if len(set(self.env_ids)) != len(self.env_ids):
            raise ConfigError(f"--envs names one environment twice: {', '.join(self.env_ids)}")
        algorithm = get_algorithm(base.algo.name)
        self.space: SearchSpace = load_space(settings.space or base.algo.name)
        has_objectives = bool(population_specs(self.base[0])[0].objective)
        self.member_keys = self.space.member_keys(algorithm.member_settings, has_objectives)
        self.normalise = normalisers(self.env_ids, settings.references)
        budget = int(base.total_timesteps)
        E = settings.evaluations
        self.grid = [math.ceil(budget * (k + 1) / E) for k in range(E)]  # env steps of each evaluation
        self.check_space()

        self.study_dir.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{self.study_dir / STUDY_DB}"
        self.study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize",
                                         load_if_exists=True,
                                         pruner=pruner or make_pruner(settings.pruner, settings.startup_trials, self.grid))
        identity = {**settings.identity(), "space": self.space.describe()}
        stored = self.study.user_attrs.get("identity")
        if stored is None:
            self.study.set_user_attr("identity", identity)
        elif stored != identity:
            diff = [k for k in identity if stored.get(k) != identity[k]]
            raise ConfigError(f"{self.study_dir} is a study of other settings: {'; '.join(f'{k} was {stored.get(k)!r}, now {identity[k]!r}' for k in diff)}"
                              "; launch it with its own settings (more --trials may be given) or choose another folder")

    # ------------------------------------------------------------------ set-up
    def check_space(self) -> None:
        """Every searched key at its ends (every choice) composes and validates: a space that cannot train is an
        error now, not a failed trial."""
        from optuna.distributions import CategoricalDistribution

        fixed = [f"{k}={v}" for k, v in self.space.fixed.items()]
        for key, d in self.space.distributions.items():
            values = d.choices if isinstance(d, CategoricalDistribution) else (d.low, d.high)
            for value in values:
                try:
                    population_specs(self.trial_config(0, 0, {key: value}, fixed))
                except Exception as e:  # Hydra's (a key the config lacks) or ours (a value out of range)
                    line = hydra_error_line(e)
                    if line is None:
                        raise
                    raise ConfigError(f"search space {self.space.source}: {key}={value}: {line}") from None

    def trial_config(self, env_index: int, number: int | None, params: dict[str, Any], fixed: list[str] | None = None) -> DictConfig:
        """The config of one trial on one environment (number None: of a population, whose run_root is the trials'
        folder, so that TensorBoard opened there names a run as its HParams row does: 0003/Hopper-v5/...)."""
        fixed = [f"{k}={v}" for k, v in self.space.fixed.items()] if fixed is None else fixed
        env = [o for o in [self.env_overrides[env_index]] if o]
        root = self.study_dir / "trials" if number is None else self.trial_dir(number)
        seeds = f"population.seeds=[{','.join(map(str, self.s.seeds))}]"
        return compose([*self.s.overrides, *env, *fixed, *(override_text(k, v) for k, v in params.items()),
                        seeds, f"run_root={root}"])

    def trial_dir(self, number: int) -> Path:
        return self.study_dir / "trials" / f"{number:04d}"

    def members_of(self, env_index: int, number: int, params: dict[str, Any]) -> list[RunSpec]:
        """The trial's runs on one environment: its seeds, each holding the trial's member settings."""
        specs = population_specs(self.trial_config(env_index, number, params))
        algo = {k[len("algo."):]: float(v) for k, v in params.items() if k in self.member_keys and k.startswith("algo.")}
        return [replace(s, algo_settings=algo) for s in specs]

    def ask_batch(self) -> list[TrialRuns]:
        """The trials a killed tuner left running, topped up with new ones to a batch."""
        from optuna.trial import Trial, TrialState

        left = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        reported = {t.number: set(t.intermediate_values) for t in left}
        trials = [Trial(self.study, t._trial_id) for t in left]
        n_new = min(self.s.batch - len(trials), self.s.trials - len(self.study.get_trials(deepcopy=False)))
        for _ in range(max(n_new, 0)):
            number = len(self.study.get_trials(deepcopy=False))
            self.study.sampler = sampler_for(self.s.sampler, self.s.seed, number, self.s.startup_trials)
            trials.append(self.study.ask())
        out = []
        for trial in trials:
            self.study.sampler = sampler_for(self.s.sampler, self.s.seed, trial.number, self.s.startup_trials)
            params = {k: trained_value(suggest(trial, k, d)) for k, d in self.space.distributions.items()}
            trial.set_user_attr("runs", str(self.trial_dir(trial.number).relative_to(self.study_dir)))
            out.append(TrialRuns(trial, params, reported.get(trial.number, set())))
        return out

    def build(self, batch: list[TrialRuns]) -> list[PopulationTrainer]:
        """One population per environment and value of the keys that are not member keys."""
        from optuna.trial import TrialState

        groups: dict[tuple, list[tuple[TrialRuns, RunSpec]]] = {}
        for tr in batch:
            try:  # a combination the space allows and the config does not (a minibatch larger than the batch)
                specs = [(e, spec) for e in range(len(self.env_ids)) for spec in self.members_of(e, tr.trial.number, tr.params)]
            except ConfigError as e:
                self.stop(tr, TrialState.FAIL, f"failed: its settings do not validate: {e}")
                continue
            for e, spec in specs:
                groups.setdefault((e, group_key(tr.params, self.member_keys)), []).append((tr, spec))
        trainers = []
        for (e, key), members in groups.items():
            shared = {k: v for k, v in members[0][0].params.items() if k not in self.member_keys}
            trainer = PopulationTrainer(self.trial_config(e, None, shared), [spec for _, spec in members])
            for r, (tr, spec) in enumerate(members):
                tr.members.append(Member(trainer, r, self.env_ids[e], f"{self.env_ids[e]}/seed{spec.seed}"))
            trainers.append(trainer)
        return trainers

    # ------------------------------------------------------------------ evaluations
    def record_scores(self, batch: list[TrialRuns]) -> None:
        """Each run's score when it passed each evaluation's step, kept with its trial (a resumed run that
        passed one before the kill finds it there)."""
        for tr in batch:
            if tr.done:
                continue
            for m in tr.members:
                key = f"scores {m.key}"
                scores = list(tr.trial.user_attrs.get(key, []))
                passed = sum(m.step >= g for g in self.grid)
                if passed > len(scores):
                    scores += [m.trainer.score(m.r)] * (passed - len(scores))
                    tr.trial.set_user_attr(key, scores)

    def value_at(self, tr: TrialRuns, k: int) -> float | None:
        """The trial's value at evaluation k: normalised scores averaged over its runs; None if a run has none."""
        values = [self.normalise[m.env_id](tr.trial.user_attrs[f"scores {m.key}"][k]) for m in tr.members]
        return None if any(math.isnan(v) for v in values) else float(np.mean(values))

    def evaluate(self, batch: list[TrialRuns]) -> None:
        """Report what is due, let the pruner judge, tell the study what ended."""
        from optuna.trial import TrialState

        self.record_scores(batch)
        judged = []
        for tr in batch:
            if tr.done:
                continue
            failed = [m for m in tr.members if m.trainer.failed[m.r]]
            if failed:
                why = failed[0].trainer.errors.get(failed[0].r, "a run failed")
                self.stop(tr, TrialState.FAIL, f"failed: {why}")
                continue
            passed = min(len(tr.trial.user_attrs.get(f"scores {m.key}", [])) for m in tr.members)
            for k in range(passed):
                value = self.value_at(tr, k)
                if value is not None and self.grid[k] not in tr.reported:
                    tr.trial.report(value, self.grid[k])
                    tr.reported.add(self.grid[k])
                    for m in tr.members:
                        m.trainer.loggers[m.r].scalars({"tune/objective": value}, self.grid[k])
                    judged.append(tr)
        verdicts = [(tr, tr.trial.should_prune()) for tr in dict.fromkeys(judged)
                    if not all(m.step >= self.grid[-1] for m in tr.members)]
        for tr, prune in verdicts:  # every verdict first: none depends on another's telling
            if prune:
                self.stop(tr, TrialState.PRUNED, f"pruned at step {max(tr.reported)}")
        for tr in batch:
            if not tr.done and all(m.step >= self.grid[-1] for m in tr.members):
                value = self.value_at(tr, len(self.grid) - 1)
                if value is None:
                    self.stop(tr, TrialState.FAIL, "failed: a run finished no episode")
                else:
                    self.study.tell(tr.trial, value)
                    tr.done = True
                    self.say(tr, f"complete: {value:.4g}")

    def stop(self, tr: TrialRuns, state, why: str) -> None:
        for m in tr.members:
            m.trainer.prune([m.r])
        tr.trial.set_user_attr("end", why)
        self.study.tell(tr.trial, state=state)
        tr.done = True
        self.say(tr, why)

    def say(self, tr: TrialRuns, what: str) -> None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in tr.params.items())
        print(f"trial {tr.trial.number} {what} ({params})", flush=True)

    # ------------------------------------------------------------------ the loop
    def train_batch(self, batch: list[TrialRuns]) -> None:
        trainers = self.build(batch)
        dirs = [s.dir for t in trainers for s in t.specs]
        try:
            with RunLocks(dirs), StopRequest() as stop:
                for t in trainers:
                    t.start(resume=True)
                self.evaluate(batch)
                while any(bool(t.active.any()) for t in trainers):
                    for t in trainers:
                        if t.active.any():
                            t.iterate()
                    self.evaluate(batch)
                    if stop.signal is not None:  # checkpoint where we are; the same command resumes
                        with stop.deferred():
                            for t in trainers:
                                for r in t.active.nonzero().flatten().tolist():
                                    t.save_checkpoint(r)
                        raise Interrupted(f"stopped by {stop.signal.name} after an iteration; every run "
                                          "checkpointed", int(stop.signal))
        finally:
            for t in trainers:
                t.close()

    def run(self):
        """Train trials until the study holds ``trials`` of them; returns the study."""
        torch.set_num_threads(self.base[0].torch_threads)
        with RunLocks([self.study_dir]):  # one tuner per study
            while True:
                batch = self.ask_batch()
                if not batch:
                    return self.study
                numbers = [tr.trial.number for tr in batch]
                print(f"batch: trials {numbers[0]}-{numbers[-1]} on {', '.join(self.env_ids)} × seeds "
                      f"{self.s.seeds}", flush=True)
                t0 = time.perf_counter()
                self.train_batch(batch)
                print(f"batch done in {time.perf_counter() - t0:.0f} s", flush=True)


def _check_counts(s: TuneSettings) -> None:
    for name, value in (("--trials", s.trials), ("--batch", s.batch), ("--evaluations", s.evaluations)):
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name}={value} must be a positive integer")
    if s.startup_trials < 0:
        raise ConfigError(f"--startup-trials={s.startup_trials} must be >= 0")
    if s.sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {s.sampler} is not one of: {', '.join(SAMPLERS)}")
    if s.pruner not in PRUNERS:
        raise ConfigError(f"--pruner {s.pruner} is not one of: {', '.join(PRUNERS)}")
    if not s.seeds or len(set(s.seeds)) != len(s.seeds) or any(x < 0 for x in s.seeds):
        raise ConfigError(f"--seeds {','.join(map(str, s.seeds))}: distinct non-negative integers, at least one")
