"""Algorithms: update rules over the population engine (``ppo_bench.rl.engine.trainer``).

The engine owns what every algorithm shares: the vector actors and their rollouts, observation and
reward normalisation, GAE, episode bookkeeping, logging, checkpoints and bit-for-bit resume, all with
a run axis R. An algorithm owns its update, its optimiser state and its per-run hyperparameters. It is
a class built from the trainer, ``Algorithm(trainer)``, with

- ``update(data) -> stats``: one update of every active run from the batch the engine made of the
  last rollout (``PopulationTrainer.batch``: (R, B, ...) tensors with advantages and returns);
  stats are (R,) tensors;
- ``log_values(stats, r) -> {tag: value}``: run r's scalars for TensorBoard after an update;
- ``run_state(r)`` / ``load_run_state(r, state)``: run r's algorithm state for its checkpoint (a dict
  merged into the checkpoint; ``hparams`` holds its per-run hyperparameters);
- ``hparams_of(r)``: run r's current per-run hyperparameters;
- ``standardize_advantages``: whether the engine standardises each run's advantages over its batch;
- optionally ``acting_policy()`` (parameters the actors act with, when they are not the trained
  network's, e.g. CEM's candidates) and ``reset_each_iteration`` (every episode starts with the
  iteration).

The rollout length T, γ and λ come from the algorithm's config group (``conf/algo/<name>.yaml``).
Adding an algorithm = one module here + one YAML file in ``conf/algo/`` + one line in ``ALGORITHMS``.
"""

from __future__ import annotations

import importlib

from ppo_bench.common.errors import ConfigError

# name -> "module:class", imported when used
ALGORITHMS = {
    "ppo": "ppo_bench.rl.algorithms.ppo.algorithm:PPO",
    "trpo": "ppo_bench.rl.algorithms.trpo:TRPO",
    "vpg": "ppo_bench.rl.algorithms.vpg:VanillaPG",
    "a2c": "ppo_bench.rl.algorithms.a2c:A2C",
    "a2c_trust_region": "ppo_bench.rl.algorithms.acer_trust_region:A2CTrustRegion",
    "cem": "ppo_bench.rl.algorithms.cem:CEM",
}


def get_algorithm(name: str):
    if name not in ALGORITHMS:
        raise ConfigError(f"algo.name={name!r} is unknown; allowed: {', '.join(sorted(ALGORITHMS))}")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)
