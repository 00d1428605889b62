"""Hyperparameter search on the population engine: members with settings of their own train as they would alone; a
tiny study asks, trains a batch as one population, prunes, tells, writes its preset, figures and table; a pruned
trial leaves its neighbours' runs bit for bit as they are without pruning; a study killed with SIGKILL and launched
again with the same command ends with the same trials; Hydra's Optuna sweeper maximises what ``ppo-bench`` returns."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

optuna = pytest.importorskip("optuna")  # the tune extra; `make test` installs it

from ppo_bench.common.errors import ConfigError  # noqa: E402
from ppo_bench.rl.engine.trainer import PopulationTrainer  # noqa: E402
from ppo_bench.rl.launch import population_specs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["env=cartpole", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=2", "total_timesteps=1024",
        "checkpoint_every=2", "progress=never"]
TINY_FLAGS = ["--trials", "4", "--batch", "2", "--evaluations", "4", "--startup-trials", "2"]


# ---------------------------------------------------------------------------------------------- the engine
def first_update(cfg, specs):
    t = PopulationTrainer(cfg, specs)
    t.collect()
    stats = t.update()
    return t, stats


def test_members_with_settings_of_their_own_update_as_alone(make_cfg):
    """Per-member step size, γ, λ, entropy and value coefficients (and ε): each member's first update is its own
    alone, to the bit, next to neighbours that hold other values (an entropy bonus of 0 beside one that is not)."""
    from dataclasses import replace

    own = [{"lr": 1e-3, "gamma": 0.95, "gae_lambda": 0.9, "ent_coef": 0.0, "vf_coef": 0.5},
           {"lr": 3e-5, "gamma": 0.999, "gae_lambda": 1.0, "ent_coef": 0.01, "vf_coef": 2.0}]
    for env, arch in (("env=hopper", "model=separate"), ("env=cartpole", "model=shared")):
        small = [env, arch, "algo.num_steps=64", "algo.minibatch_size=16", "algo.epochs=2"]
        cfg = make_cfg(*small, "population.seeds=[3]", "population.objectives=[{name:clip,eps:0.1},{name:clip,eps:0.3}]")
        specs = [replace(s, algo_settings=a) for s, a in zip(population_specs(cfg), own)]
        pop, pop_stats = first_update(cfg, specs)
        assert pop.R == 2 and specs[0].setting.endswith("_ent_coef0_gae_lambda0.9_gamma0.95_lr0.001_vf_coef0.5")
        for r, (spec, a) in enumerate(zip(specs, own)):
            alone_cfg = make_cfg(*small, "seed=3", f"objective.eps={spec.objective['eps']}",
                                 *(f"algo.{k}={v}" for k, v in a.items()))
            alone, alone_stats = first_update(alone_cfg, population_specs(alone_cfg))
            assert torch.equal(pop.model.flat[r], alone.model.flat[0]), (env, r)
            assert torch.equal(pop.algo.opt.v[r], alone.algo.opt.v[0]), (env, r)
            for k in pop_stats:
                assert torch.equal(pop_stats[k][r], alone_stats[k][0]), (env, r, k)
        assert not torch.equal(pop.model.flat[0], pop.model.flat[1])  # same seed, other settings: other updates


def test_a_member_setting_the_algorithm_does_not_read_per_run_is_refused(make_cfg):
    from dataclasses import replace

    cfg = make_cfg("env=cartpole", "algo.num_steps=64", "algo.minibatch_size=32")
    spec = replace(population_specs(cfg)[0], algo_settings={"epochs": 3})
    with pytest.raises(ConfigError, match="members may differ by gamma, gae_lambda, lr, ent_coef, vf_coef only, not by epochs"):
        PopulationTrainer(cfg, [spec])


# ---------------------------------------------------------------------------------------------- search spaces
def test_the_ppo_space_is_the_sweepers_grammar_and_every_key_is_a_member_key(tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from ppo_bench.rl.algorithms.ppo.algorithm import PPO
    from ppo_bench.tune.space import group_key, load_space

    space = load_space("ppo")
    assert space.distributions["algo.lr"] == FloatDistribution(1e-5, 3e-3, log=True)
    assert space.distributions["algo.gamma"] == CategoricalDistribution([0.98, 0.99, 0.995, 0.999])
    assert sorted(space.member_keys(PPO.member_settings, True)) == sorted(space.distributions)

    mine = tmp_path / "space.yaml"
    mine.write_text("hydra:\n  sweeper:\n    params:\n      algo.lr: interval(1e-4, 1e-3)\n"
                    "      algo.epochs: choice(5, 10)\n      algo.minibatch_size: range(32, 128, 32)\n"
                    "      algo.max_grad_norm: 0.5\n")
    space = load_space(str(mine))
    assert space.distributions["algo.minibatch_size"] == IntDistribution(32, 128, step=32)  # inclusive, as the sweeper
    assert space.fixed == {"algo.max_grad_norm": "0.5"}
    assert space.member_keys(PPO.member_settings, True) == ["algo.lr"]
    assert group_key({"algo.lr": 1e-4, "algo.epochs": 5, "algo.minibatch_size": 64}, ["algo.lr"]) == \
        (("algo.epochs", "5"), ("algo.minibatch_size", "64"))
    for text, message in (("hydra: {}\n", "no search space"), ("hydra:\n  sweeper:\n    params:\n      a: interval(2, 1)\n",
                                                               "an interval of two numbers, low < high")):
        mine.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_space(str(mine))
    with pytest.raises(ConfigError, match="--space nope is not one of: ppo"):
        load_space("nope")


# ---------------------------------------------------------------------------------------------- a tiny study
class PruneTrial:
    """A pruner of the test's: trial ``number`` at its first judgement, no other."""

    def __init__(self, number: int):
        self.number = number

    def prune(self, study, trial) -> bool:
        return trial.number == self.number


def settings(study: Path, **kw):
    from ppo_bench.tune.tuner import TuneSettings

    return TuneSettings(study=str(study), overrides=TINY, trials=2, batch=2, evaluations=4, startup_trials=1, **kw)


def test_a_tiny_study_prunes_a_trial_and_its_neighbour_trains_as_without_pruning(tmp_path, capsys):
    """Ask two trials, train them as one population, prune one at its first evaluation (a pruner of the test's),
    tell: the pruned trial's run stops there (status pruned), the other's run is the same, checkpoint and every
    scalar, as in a study that pruned nothing; the preset, table and figures are written and the preset composes."""
    from hydra import compose, initialize_config_dir
    from optuna.pruners import BasePruner, NopPruner
    from optuna.trial import TrialState

    from ppo_bench.common.paths import CONF_DIR
    from ppo_bench.tune.cli import tune
    from scripts.fault_drill import run_differences

    class PruneOne(PruneTrial, BasePruner):
        pass

    pruned = tune(settings(tmp_path / "a"), preset=str(tmp_path / "conf" / "preset" / "tuned.yaml"), pruner=PruneOne(1))
    kept = tune(settings(tmp_path / "b"), pruner=NopPruner())
    out = capsys.readouterr().out
    assert "trial 1 pruned at step 256" in out and "batch: trials 0-1 on CartPole-v1" in out
    assert [t.state for t in pruned.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert [t.state for t in kept.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert [t.params for t in pruned.trials] == [t.params for t in kept.trials]  # seeded by (seed, number)
    assert pruned.trials[0].value == kept.trials[0].value
    assert list(pruned.trials[1].intermediate_values) == [256] and list(kept.trials[1].intermediate_values) == [256, 512, 768, 1024]

    (run_a,) = (tmp_path / "a" / "trials" / "0000").glob("CartPole-v1/*/seed0")
    (run_b,) = (tmp_path / "b" / "trials" / "0000").glob("CartPole-v1/*/seed0")
    assert run_differences(run_a, run_b) == []
    (stopped,) = (tmp_path / "a" / "trials" / "0001").glob("CartPole-v1/*/seed0")
    status = json.loads((stopped / "status.json").read_text())
    assert status["status"] == "pruned" and status["global_step"] == 256

    best = pruned.best_trial
    assert best.number == 0
    text = (tmp_path / "a" / "best.yaml").read_text()
    assert text == (tmp_path / "conf" / "preset" / "tuned.yaml").read_text()
    assert text.startswith("# @package _global_\n# Tuned by ppo-bench-tune")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "preset=tuned"])
    assert cfg.algo.lr == pytest.approx(best.params["algo.lr"], rel=1e-3)
    assert cfg.objective.eps == pytest.approx(best.params["objective.eps"], rel=1e-3)
    for name in ("trials.csv", "history.png", "importances.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    rows = (tmp_path / "a" / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,value,algo.lr") and rows[2].startswith("1,PRUNED,")

    # TensorBoard's HParams tab on the trials' folder: a row per run, named as the run selector names it, the
    # searched settings as columns that differ, the trial's value at each evaluation a metric
    from test_hparams import hparams_experiment, session_groups

    exp = hparams_experiment(tmp_path / "a" / "trials")
    cols = {h.name: h for h in exp.hparam_infos}
    assert all(cols[k].differs for k in ("algo.lr", "algo.gae_lambda", "algo.ent_coef", "objective.eps"))
    assert "tune/objective" in {m.name.tag for m in exp.metric_infos}
    rows = session_groups(tmp_path / "a" / "trials", exp)
    assert sorted(rows) == sorted(p.relative_to(tmp_path / "a" / "trials").as_posix() for p in (run_a, stopped))
    lr = rows[run_a.relative_to(tmp_path / "a" / "trials").as_posix()]["algo.lr"]
    assert lr == pytest.approx(pruned.trials[0].params["algo.lr"], rel=1e-3)  # trained to 4 significant digits


def tune_command(study: Path) -> list[str]:
    return [sys.executable, "-m", "ppo_bench.tune", str(study), *TINY, *TINY_FLAGS]


def trials_of(study: Path) -> list[tuple]:
    s = optuna.load_study(study_name="ppo-bench-tune", storage=f"sqlite:///{study / 'study.db'}")
    return [(t.number, t.state.name, t.value, t.params, t.intermediate_values) for t in s.trials]


def test_a_study_killed_mid_batch_resumes_with_the_same_command_to_the_same_trials(tmp_path):
    """SIGKILL while the second batch trains (a checkpoint of trial 2's run exists); the same command then trains
    the trials left running from their checkpoints and ends with the trials, values and evaluations of a study
    that was never killed — the median pruner judging against the first batch included."""
    env = {**os.environ, "CI": "1"}
    done = subprocess.run(tune_command(tmp_path / "whole"), capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    killed = subprocess.Popen(tune_command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "killed" / "trials" / "0002").glob("*/*/seed0/checkpoint.pt")):
        assert killed.poll() is None and time.monotonic() < deadline, "the study ended before it could be killed"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = [state for _, state, *_ in trials_of(tmp_path / "killed")]
    assert left[:2] == ["COMPLETE", "COMPLETE"] and "RUNNING" in left[2:], left
    resumed = subprocess.run(tune_command(tmp_path / "killed"), capture_output=True, text=True, env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "batch: trials 2-3" in resumed.stdout and "batch: trials 0-1" not in resumed.stdout
    whole = trials_of(tmp_path / "whole")
    assert len(whole) == 4 and {state for _, state, *_ in whole} <= {"COMPLETE", "PRUNED"}
    assert trials_of(tmp_path / "killed") == whole


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv, line", [
    (["--sampler", "grid"], "error: --sampler grid is not one of: tpe, random"),
    (["--trials", "0"], "error: --trials=0 must be a positive integer"),
    (["--seeds", "0,x"], "error: --seeds 0,x: comma-separated integers"),
    (["--space", "nope"], "error: --space nope is not one of: ppo (or give a YAML file's path)"),
    (["--envs", "hopper,walker2d", "--reference", "Ant-v5=1"], "error: --reference Ant-v5: not an environment of this study (Hopper-v5, Walker2d-v5)"),
    (["--envs", "cartpole,hopper"], "error: CartPole-v1 has no random-policy score (scripts/random_scores.py): an objective "
                                    "over several environments normalises each (random 0, reference 1)"),
    (["objective=kl_fixed"], "error: search space "),
    (["population.seeds=[0,1]"], "error: population.* belongs to the tuner: a trial's seeds are --seeds, its setting the space's"),
    (["algo.lr_typo=1"], "error: "),
    (["--bogus"], "error: unrecognized arguments: --bogus (see --help)"),
])
def test_a_users_error_is_one_line_and_exit_code_2(argv, line, tmp_path, capsys):
    from ppo_bench.tune.cli import main

    assert main([str(tmp_path / "study"), *TINY, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(line), err


def test_a_study_relaunched_with_other_settings_is_refused(tmp_path, capsys):
    from ppo_bench.tune.cli import main

    study = tmp_path / "study"
    assert main([str(study), *TINY, "total_timesteps=128", "--trials", "1", "--batch", "1", "--evaluations", "1"]) == 0
    capsys.readouterr()
    assert main([str(study), *TINY, "total_timesteps=128", "--trials", "1", "--batch", "1", "--evaluations", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {study} is a study of other settings: evaluations was 1, now 2;") and "\n" not in err


def test_the_docs_tune_commands_parse():
    from ppo_bench.tune.cli import parse_args

    seen = 0
    for page in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        for line in page.read_text().splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("ppo-bench-tune "):
                parse_args(shlex.split(line.split(" # ")[0])[1:])
                seen += 1
    assert seen >= 3


# ---------------------------------------------------------------------------------------------- Hydra's sweeper
def test_hydras_optuna_sweeper_maximises_the_mean_score_ppo_bench_returns(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    p = subprocess.run([sys.executable, "-m", "ppo_bench", "-m", "tune=ppo", *TINY, "total_timesteps=256",
                        "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path}"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "CI": "1"}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    import yaml

    result = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    scores = [json.loads((d / "status.json").read_text())["score_last100"] for d in tmp_path.glob("*/CartPole-v1/*/seed0")]
    assert len(scores) == 2 and result["best_value"] == pytest.approx(max(scores))
    assert set(result["best_params"]) == {"algo.lr", "objective.eps", "algo.gae_lambda", "algo.gamma", "algo.ent_coef"}


# ---------------------------------------------------------------------------------------------- the benchmark
def test_the_benchmark_counts_the_trials_finished_in_time_and_the_best_value(tmp_path):
    """scripts/bench_tuning.py reads each tuner's study: complete and pruned trials finished within the wall time
    count, failed ones and later ones do not; the best value is the best complete one (turned into a return)."""
    import datetime

    from scripts.bench_tuning import read_study

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    start = datetime.datetime.now()
    for value, state in ((1.0, "COMPLETE"), (3.0, "COMPLETE"), (None, "PRUNED"), (None, "FAIL"), (2.0, "COMPLETE")):
        trial = study.ask()
        trial.report(0.5, 1)
        study.tell(trial, value, state=getattr(optuna.trial.TrialState, state))
    time.sleep(0.05)
    study.ask()  # still running: not finished
    res = read_study(storage, "s", start, wall=(datetime.datetime.now() - start).total_seconds(), to_return=lambda v: 10 * v)
    assert (res["finished"], res["complete"], res["pruned"], res["failed"]) == (4, 3, 1, 1)
    assert res["best_return"] == 30.0 and [v for _, v in res["best_so_far"]] == [10.0, 30.0]
    assert read_study(storage, "nope", start, 1.0)["finished"] == 0
