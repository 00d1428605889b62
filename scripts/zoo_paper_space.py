"""rl-baselines3-zoo's ``train.py --optimize`` (SB3's PPO) searching ppo-bench's PPO space, conf/tune/ppo.yaml (step
size, ε, λ, γ, entropy bonus), with the rest at the paper's settings (Table 3: 2048 steps per rollout, minibatches
of 64, 10 epochs; SB3's MlpPolicy, 64×64 tanh as the paper's network) — the ``rl-zoo3-paper-space`` tuner of
scripts/bench_tuning.py. rl-baselines3-zoo's own PPO space also samples the rollout length, the minibatch size,
the epochs and the network, so that a trial's cost varies with them tenfold; this one keeps a trial's work equal to
ppo-bench-tune's, so the two tuners' trials per hour compare the engines and not the spaces.

    python scripts/zoo_paper_space.py <rl_zoo3.train's arguments, --algo ppo --optimize ...>

It puts the sampler in rl_zoo3's table of samplers (its documented way to tune a space of one's own) and runs
rl_zoo3.train.train() with the arguments given."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppo_bench.tune.space import load_space  # noqa: E402
from ppo_bench.tune.tuner import suggest  # noqa: E402

# ppo-bench's key → SB3 PPO's argument
SB3_NAMES = {"algo.lr": "learning_rate", "objective.eps": "clip_range", "algo.gae_lambda": "gae_lambda",
             "algo.gamma": "gamma", "algo.ent_coef": "ent_coef"}
PAPER = {"n_steps": 2048, "batch_size": 64, "n_epochs": 10}  # Schulman et al. 2017, Table 3


def paper_space_sampler():
    """rl_zoo3's sampler (its signature: trial, n_actions, n_envs, additional_args → SB3 PPO's keyword arguments)
    over conf/tune/ppo.yaml, read once; a searched key SB3's PPO has no name for here is refused before the study."""
    space = load_space("ppo")
    unknown = set(space.distributions) - set(SB3_NAMES)
    if unknown:
        raise SystemExit(f"error: conf/tune/ppo.yaml searches {', '.join(sorted(unknown))}, which this script does "
                         "not map to SB3's PPO")

    def sample(trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
        return {**PAPER, **{SB3_NAMES[k]: suggest(trial, k, d) for k, d in space.distributions.items()}}

    return sample


def main() -> None:
    from rl_zoo3 import hyperparams_opt
    from rl_zoo3.train import train

    hyperparams_opt.HYPERPARAMS_SAMPLER["ppo"] = paper_space_sampler()  # the dict rl_zoo3's ExperimentManager reads
    sys.argv = ["rl_zoo3.train", *sys.argv[1:]]
    train()


if __name__ == "__main__":
    main()
