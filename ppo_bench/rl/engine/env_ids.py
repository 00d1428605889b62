"""Environment ids as the command line gives them: a registered Gymnasium id or Gymnasium's ``module:id`` form.

Kept apart from ``ppo_bench.rl.engine.envs`` (the actors, which need torch and MuJoCo) so that checking a config,
and ``ppo-bench --help``, import neither.
"""

from __future__ import annotations

import difflib
from typing import Sequence

import gymnasium as gym

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.extensions import import_named


def registered_id(env_id: str) -> str:
    """The registered id of ``env_id``, importing its module first when it names one: Gymnasium's
    ``module:id`` form (``my_pkg.envs:MyEnv-v0``), whose module registers the environment as it is imported,
    as ``gymnasium.make`` does. A module that cannot be found is a ConfigError naming it."""
    if ":" not in env_id:
        return env_id
    module, env_name = env_id.split(":", 1)
    import_named(module, f"env.id={env_id!r}", to=" to import")
    return env_name


def check_env_id(env_id: str, presets: Sequence[str] = ()) -> None:
    if registered_id(env_id) in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    presets_txt = f" Presets: env={'|'.join(presets)}." if presets else ""
    raise ConfigError(f"env.id={env_id!r} is not a registered Gymnasium id{hint}.{presets_txt}")
