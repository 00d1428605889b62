"""`ppo-bench` / `python -m ppo_bench`: the Hydra app that trains one run or a population."""

from __future__ import annotations

import math
import sys

import hydra
from omegaconf import DictConfig

from ppo_bench.common.errors import RunsFailed
from ppo_bench.common.hydra_cli import RENAMED, exit_on_user_error, run_hydra_app
from ppo_bench.common.paths import CONF_DIR
from ppo_bench.common.preemption import Interrupted
from ppo_bench.rl.engine.config import register_configs

register_configs()  # the schema Hydra composes ppo-bench's configs against: all that --help needs

RENAMED["ppo"] = ("PPO's settings ppo.* are algo.* since ppo-bench 0.2 (algo.lr, algo.epochs, ...: conf/algo/ppo.yaml) "
                  "and the budget ppo.total_timesteps is total_timesteps")


def report(summary: dict[str, dict], run_root: str) -> None:
    width = max(len(k) for k in summary)
    print(f"{'run':<{width}}  {'status':<18} {'steps':>9}  score (mean return, last 100 episodes)")
    for name, s in summary.items():
        print(f"{name:<{width}}  {s['status']:<18} {s['global_step']:>9}  {s['score_last100']:.2f}")
    print(f"\nTensorBoard logs: {run_root}\n  open them with:  tensorboard --logdir {run_root}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> float:
    """Train the runs the config names; returns their mean score, the value a Hydra sweeper (Optuna's) maximises."""
    # the engine (torch, MuJoCo) is imported only to train: --help and --version answer in a second without it
    from ppo_bench.rl.launch import resume_command, train_from_config

    try:
        summary = train_from_config(cfg)
    except Interrupted as e:
        print(f"interrupted: {e}; to resume: {resume_command(cfg)}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except Exception as e:
        exit_on_user_error(e)  # a bad option, an unwritable run_root: one line, exit code 2
        raise
    report(summary, cfg.run_root)
    failed = [k for k, s in summary.items() if s["status"] == "failed"]
    if failed:
        raise RunsFailed(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    scores = [s["score_last100"] for s in summary.values() if not math.isnan(s["score_last100"])]
    return sum(scores) / len(scores) if scores else float("nan")


def main() -> None:
    """The console entry point: the Hydra app, every error a user can cause in one line (exit code 2)."""
    run_hydra_app(app)


if __name__ == "__main__":
    main()
