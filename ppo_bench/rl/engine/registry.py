"""The algorithms the engine can train, by name: filled by ``register_algorithm`` where each is defined.

An algorithm is a class built from the trainer, ``Algorithm(trainer)`` (``ppo_bench.rl.engine.trainer``), with

- ``update(data) -> stats``: one update of every active run from the batch the engine made of the last
  rollout (``PopulationTrainer.batch``: (R, B, ...) tensors with advantages and returns); stats are (R,) tensors;
- ``log_values(stats, r) -> {tag: value}``: run r's scalars for TensorBoard after an update;
- ``run_state(r)`` / ``load_run_state(r, state)``: run r's algorithm state for its checkpoint (a dict merged
  into the checkpoint; ``hparams`` holds its per-run hyperparameters);
- ``hparams_of(r)``: run r's current per-run hyperparameters;
- ``standardize_advantages``: whether the engine standardises each run's advantages over its batch;
- optionally ``acting_policy()`` (parameters the actors act with, when they are not the trained network's,
  e.g. CEM's candidates) and ``reset_each_iteration`` (every episode starts with the iteration).

Two class-level hooks run at validation, before anything is built: ``check(cfg)`` (its settings, ``algo.*``,
beyond their types) and ``settings(cfg)`` (the settings its runs differ by inside one population: PPO's
surrogate objectives; one empty setting for an algorithm without such an axis). ``Algorithm`` gives the
defaults. The rollout length T, γ and λ are ``algo.num_steps``, ``algo.gamma``, ``algo.gae_lambda``.
``member_settings`` names the ``algo.*`` settings that may differ between the members of one population
(``RunSpec.algo_settings``): settings the algorithm reads per run, on which no tensor's shape and no code path
depends (the engine reads γ and λ per run; PPO adds its step size and loss coefficients).

Adding an algorithm = one module with a decorated class + one YAML file in a ``conf/algo/`` folder; from
a package of one's own, name the module in ``extensions`` (docs: "Extending ppo-bench").
"""

from __future__ import annotations

from ppo_bench.common.errors import ConfigError

ALGORITHMS: dict[str, type] = {}


class Algorithm:
    """Defaults of the optional parts of an algorithm (the module docstring lists the whole interface)."""

    standardize_advantages = True
    reset_each_iteration = False
    member_settings: tuple[str, ...] = ("gamma", "gae_lambda")

    @staticmethod
    def check(cfg) -> None:
        """Refuse (ConfigError, one line) settings this algorithm cannot train with."""

    @classmethod
    def settings(cls, cfg) -> list[dict]:
        """The settings the runs of one population differ by, besides their seeds: none here."""
        if cfg.population.objectives is not None:
            raise ConfigError(f"population.objectives is PPO's (its surrogates); algo={cfg.algo.name} has none: "
                              "leave it null")
        return [{}]

    def hparams_of(self, r: int) -> dict[str, float]:
        return {}


def register_algorithm(name: str):
    """Class decorator: train the class as ``algo=<name>`` (its settings: a ``conf/algo/<name>.yaml``)."""

    def register(cls):
        if name in ALGORITHMS and ALGORITHMS[name] is not cls:
            raise ValueError(f"algorithm {name!r} registered twice: {ALGORITHMS[name].__module__} and {cls.__module__}")
        ALGORITHMS[name] = cls
        cls.name = name
        return cls

    return register


def get_algorithm(name: str) -> type:
    if name not in ALGORITHMS:
        raise ConfigError(f"algo.name={name!r} is unknown; allowed: {', '.join(sorted(ALGORITHMS))} "
                          "(an algorithm of your own: name its module in extensions)")
    return ALGORITHMS[name]
