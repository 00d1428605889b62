"""A population: the runs one process trains together (docs: "Populations"). A single run is a population of one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ppo_bench.common.errors import ConfigError


def value_text(v) -> str:
    """A setting's value as a run folder's name spells it: a number as short as ``%g`` writes it where that reads
    back as the same number (0.2, 1e-09, 3), else as many digits as tell it apart (0.2000001): two different
    values never share a folder."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    short = f"{v:g}"
    return short if float(short) == v else repr(float(v)) if isinstance(v, float) else str(v)


def setting_name(objective: dict) -> str:
    """'clip_eps0.2', 'kl_adaptive_beta1_kl_target0.01', 'none': reads like the sweep in TensorBoard."""
    parts = [str(objective["name"])] + [f"{k}{value_text(v)}" for k, v in sorted(objective.items()) if k != "name"]
    return "_".join(parts)


@dataclass(frozen=True)
class RunSpec:
    env_id: str
    objective: dict
    seed: int
    root: str
    algo: str
    # the member's own values of algo.* settings that may differ inside one population (the algorithm's
    # ``member_settings``: PPO's step size, γ, λ, ...); a tuner's trials differ by them. Empty: the config's.
    algo_settings: dict = field(default_factory=dict)

    @property
    def setting(self) -> str:
        """A run is named by its setting (PPO's: its surrogate objective), or, for an algorithm whose runs
        have none, by the algorithm's name; then its own algo settings, if any ('clip_eps0.2_lr0.001')."""
        name = setting_name(self.objective) if self.objective else self.algo
        return "_".join([name, *(f"{k}{value_text(v)}" for k, v in sorted(self.algo_settings.items()))])

    @property
    def name(self) -> str:
        # an environment of one's own given as Gymnasium's module:id is named by its id
        return f"{self.env_id.split(':')[-1]}/{self.setting}/seed{self.seed}"

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.name


def expand(env_id: str, settings: list[dict], seeds: list[int], root: str, algo: str) -> list[RunSpec]:
    """Every setting × every seed; a setting listed twice (its runs would share folders) is a ConfigError naming it."""
    specs = [RunSpec(env_id, s, seed, root, algo) for s in settings for seed in seeds]
    names = [s.setting for s in specs[::len(seeds)]] if seeds else []
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise ConfigError(f"population.objectives lists the setting {twice} twice; each setting once (its runs are "
                          "the folders <env>/<setting>/seed<k>)")
    return specs
