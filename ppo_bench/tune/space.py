"""Search spaces: one YAML file per algorithm (``conf/tune/<algo>.yaml``) in the sweep grammar of Hydra's Optuna
sweeper, read here into Optuna distributions, so that the sweeper and ppo-bench-tune search the same space.

The file's ``hydra.sweeper.params`` maps a config key to a sweep: ``interval(a, b)`` a float (an integer if both
ends are), ``tag(log, interval(a, b))`` on a log scale, ``choice(x, y, ...)`` categorical, ``range(a, b, step)``
the numbers from a to b inclusive in steps (as the sweeper reads it); a plain value is fixed for every trial.

A key is a *member* key when the members of one population may each hold their own value of it: an ``algo.*``
setting of the algorithm's ``member_settings`` (PPO: the step size, γ, λ, the loss's coefficients) or a
setting of the surrogate objective (``objective.eps``, ...). Any other key (``algo.epochs``,
``algo.minibatch_size``, ``algo.num_steps``, ``model.*``) changes a tensor's shape or the code path of a whole
population: trials that differ in it are trained in separate populations (``group_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.paths import CONF_DIR

SPACES = CONF_DIR / "tune"


@dataclass
class SearchSpace:
    source: str  # the file it was read from
    distributions: dict[str, Any]  # key → optuna distribution
    fixed: dict[str, str] = field(default_factory=dict)  # key → value (an override's text), the same in every trial

    def member_keys(self, algo_member_settings: tuple[str, ...], has_objectives: bool) -> list[str]:
        """The searched keys each member of a population may hold its own value of."""
        return [k for k in self.distributions if is_member_key(k, algo_member_settings, has_objectives)]

    def describe(self) -> dict[str, str]:
        """Key → the distribution as JSON: what a study stores to know it is resumed with the same space."""
        from optuna.distributions import distribution_to_json

        return {**{k: distribution_to_json(d) for k, d in self.distributions.items()},
                **{k: f"fixed {v}" for k, v in self.fixed.items()}}


def is_member_key(key: str, algo_member_settings: tuple[str, ...], has_objectives: bool) -> bool:
    if key.startswith("algo."):
        return key[len("algo."):] in algo_member_settings
    return has_objectives and (key == "objective" or key.startswith("objective."))


def space_path(space: str) -> Path:
    """A space by name (``conf/tune/<name>.yaml``) or a YAML file's path."""
    if space.endswith((".yaml", ".yml")) or "/" in space:
        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"--space {space}: no such file")
        return path
    path = SPACES / f"{space}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPACES.glob("*.yaml")))
        raise ConfigError(f"--space {space} is not one of: {known} (or give a YAML file's path)")
    return path


def load_space(space: str) -> SearchSpace:
    path = space_path(space)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as e:  # a YAML syntax error: the file is the user's
        raise ConfigError(f"--space {path}: not a YAML file ({str(e).splitlines()[0]})") from None
    params = ((raw or {}).get("hydra") or {}).get("sweeper", {}).get("params") if isinstance(raw, dict) else None
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"--space {path}: no search space (hydra.sweeper.params, a mapping of key: sweep)")
    distributions, fixed = {}, {}
    for key, value in params.items():
        parsed = to_distribution(str(key), value, path)
        if isinstance(parsed, str):
            fixed[str(key)] = parsed
        else:
            distributions[str(key)] = parsed
    if not distributions:
        raise ConfigError(f"--space {path}: every key is fixed; give at least one sweep (interval, choice, range)")
    return SearchSpace(str(path), distributions, fixed)


def to_distribution(key: str, value: Any, path: Path) -> Any:
    """One key's sweep as an Optuna distribution, or its fixed value as override text."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    try:
        (override,) = OverridesParser.create().parse_overrides([f"{key}={text}"])
    except HydraException as e:
        raise ConfigError(f"--space {path}: {key}: {str(e).splitlines()[0]}") from None
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    sweep = override.value()
    where = f"--space {path}: {key}={text}"
    if isinstance(sweep, ChoiceSweep):
        choices = list(override.sweep_iterator())
        if any(not isinstance(c, (str, int, float, bool, type(None))) for c in choices):
            raise ConfigError(f"{where}: a choice of numbers, strings, booleans or null")
        return CategoricalDistribution(choices)
    numbers = lambda *xs: all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)  # noqa: E731
    if isinstance(sweep, IntervalSweep):
        low, high, log = sweep.start, sweep.end, "log" in sweep.tags
        if not numbers(low, high) or not low < high or (log and not low > 0):
            raise ConfigError(f"{where}: an interval of two numbers, low < high (and low > 0 on a log scale)")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    if isinstance(sweep, RangeSweep) and not sweep.shuffle:
        low, high, step = sweep.start, sweep.stop, sweep.step
        if not numbers(low, high, step) or not (low < high and step > 0):
            raise ConfigError(f"{where}: a range of numbers, start < stop, step > 0")
        if all(isinstance(x, int) for x in (low, high, step)):
            return IntDistribution(low, high, step=step)
        return FloatDistribution(float(low), float(high), step=float(step))
    raise ConfigError(f"{where}: not a sweep Optuna can search (interval, choice, range)")


def override_text(key: str, value: Any) -> str:
    """The Hydra override that sets ``key`` to a sampled value."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if value is None:
        return f"{key}=null"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def trained_value(value: Any) -> Any:
    """The value a trial trains with: a sampled float to 4 significant digits (what a run folder's name and a preset
    spell; finer differences drown in RL's noise), anything else as sampled."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def group_key(params: dict[str, Any], member_keys: list[str]) -> tuple:
    """What a trial's population is decided by: its values of the keys that are not member keys."""
    return tuple(sorted((k, repr(v)) for k, v in params.items() if k not in member_keys))
