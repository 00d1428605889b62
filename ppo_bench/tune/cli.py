"""`ppo-bench-tune` / `python -m ppo_bench.tune`: a hyperparameter search whose trials train as one population."""

from __future__ import annotations

import argparse
import sys

from ppo_bench.common.errors import ConfigError, OneLineArgumentParser
from ppo_bench.common.paths import CONF_DIR

EXAMPLES = """examples:
  ppo-bench-tune runs/tune_pendulum env=inverted_pendulum total_timesteps=50000 --trials 16 --batch 8
  ppo-bench-tune runs/tune_hopper env=hopper total_timesteps=300000 --trials 64 --batch 16 --seeds 0,1 --preset tuned_hopper
  ppo-bench-tune runs/tune_three total_timesteps=300000 --envs hopper,walker2d,halfcheetah --space ppo

Launched again with the same command, a killed study goes on where it stopped (its trials and their runs).
Open the trials in TensorBoard (HParams) with: tensorboard --logdir <study>/trials"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = OneLineArgumentParser(
        prog="ppo-bench-tune", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Search hyperparameters with Optuna: each batch of trials (a trial: one setting at every seed on "
                    "every environment) trains as one population; a pruner stops hopeless trials at their periodic "
                    "evaluations; the study is an SQLite file in the study folder, so the same command resumes it.")
    ap.add_argument("study", help="the study's folder: study.db, trials/<number>/..., best.yaml, history.png, "
                                  "importances.png, trials.csv")
    ap.add_argument("overrides", nargs="*", help="ppo-bench's overrides for every trial (env=hopper total_timesteps=...)")
    ap.add_argument("--space", default=None, help="a search space: conf/tune/<name>.yaml or a YAML file "
                                                  "(default: the algorithm's, e.g. ppo)")
    ap.add_argument("--envs", default=None, help="environments, comma-separated (env group options or Gymnasium ids); "
                                                 "a trial's value averages their normalised scores (default: the config's env)")
    ap.add_argument("--seeds", default="0", help="seeds each trial trains at, comma-separated (default: 0)")
    ap.add_argument("--trials", type=int, default=20, help="trials in all, complete, pruned or failed (default: 20)")
    ap.add_argument("--batch", type=int, default=8, help="trials trained together as one population (default: 8)")
    ap.add_argument("--evaluations", type=int, default=10,
                    help="evaluations per trial, equally spaced in steps; the pruner judges each (default: 10)")
    ap.add_argument("--sampler", default="tpe", help="tpe (multivariate) | random (default: tpe)")
    ap.add_argument("--startup-trials", type=int, default=10,
                    help="trials sampled at random before TPE models the results, and finished before the median "
                         "pruner prunes (default: 10)")
    ap.add_argument("--pruner", default="median", help="median | halving | hyperband | none (default: median)")
    ap.add_argument("--seed", type=int, default=0, help="the sampler's seed (default: 0)")
    ap.add_argument("--reference", action="append", default=[], metavar="ENV=SCORE",
                    help="the score normalised to 1 on an environment (default: baselines' PPO2 at 1M steps on the "
                         "MuJoCo tasks); the random policy's score is 0")
    ap.add_argument("--preset", default=None,
                    help="also write the best settings as ppo-bench's conf/preset/<name>.yaml (ppo-bench preset=<name> "
                         "loads it) or to a .yaml path; best.yaml in the study folder is written anyway")

    def error(message: str):
        raise ConfigError(f"{message} (see --help)")

    ap.error = error  # type: ignore[method-assign]  # its one line names --help
    return ap.parse_intermixed_args(argv)


def integers(flag: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text}: comma-separated integers") from None


def references(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        env, _, score = item.partition("=")
        try:
            out[env] = float(score)
        except ValueError:
            raise ConfigError(f"--reference {item}: ENV=SCORE, e.g. Hopper-v5=2000") from None
    return out


def settings_from(args: argparse.Namespace):
    from ppo_bench.tune.tuner import TuneSettings

    return TuneSettings(study=args.study, overrides=list(args.overrides), space=args.space,
                        envs=[e for e in (args.envs or "").split(",") if e], seeds=integers("--seeds", args.seeds),
                        trials=args.trials, batch=args.batch, evaluations=args.evaluations, sampler=args.sampler,
                        startup_trials=args.startup_trials, pruner=args.pruner, seed=args.seed,
                        references=references(args.reference))


def tune(settings, preset: str | None = None, pruner=None):
    """Run the study to its number of trials, then write its outputs; returns the study."""
    from ppo_bench.tune.outputs import BEST, preset_path, preset_text, write_figures, write_preset, write_trials_table
    from ppo_bench.tune.tuner import Tuner

    target = preset_path(preset) if preset else None
    tuner = Tuner(settings, pruner=pruner)
    study = tuner.run()
    folder = tuner.study_dir
    write_trials_table(study, folder / "trials.csv")
    finished = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if not finished:
        print(f"no trial completed; the trials are in {folder / 'trials.csv'}")
        return study
    text = preset_text(study, tuner.space.fixed, settings)
    write_preset(text, folder / BEST)
    if target is not None:
        write_preset(text, target)
    figures = write_figures(study, folder)
    best = study.best_trial
    print(f"\nbest: trial {best.number}, value {best.value:.4g}: "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()))
    print(f"preset: {folder / BEST}" + (f" and {target}" if target else ""))
    if target is not None and target.parent == CONF_DIR / "preset":
        print(f"  train with it: ppo-bench preset={target.stem} ...")
    print(f"trials: {folder / 'trials.csv'}; figures: {', '.join(str(f) for f in figures)}")
    print(f"TensorBoard (HParams): tensorboard --logdir {folder / 'trials'}")
    return study


def main(argv: list[str] | None = None) -> int:
    from ppo_bench.common.hydra_cli import hydra_error_line
    from ppo_bench.common.preemption import Interrupted

    try:
        args = parse_args(argv)
        try:
            import optuna  # noqa: F401
            import matplotlib  # noqa: F401
        except ImportError as e:
            raise ConfigError(f"ppo-bench-tune needs {e.name}: pip install 'ppo-bench[tune]'") from None
        tune(settings_from(args), preset=args.preset)
    except Interrupted as e:
        print(f"interrupted: {e}; the same command resumes the study", file=sys.stderr, flush=True)
        return e.exit_code
    except Exception as e:
        line = hydra_error_line(e)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
