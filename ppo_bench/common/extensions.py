"""Code of one's own, brought in without editing ppo-bench: modules imported before a config is checked.

A module registers what it defines as it is imported — an RL algorithm (``@register_algorithm``), a surrogate
objective (``@objective``), an LM algorithm, a task, a Gymnasium environment (``gymnasium.register``). It is
named in the config (``extensions=[my_pkg.algos]``) or, for an installed package, in the entry-point group
``ppo_bench.extensions`` of its pyproject (``[project.entry-points."ppo_bench.extensions"]``; every installed
one is imported). Its YAML files (``conf/algo/my_algo.yaml``, ...) join Hydra's config search path:
``hydra.searchpath=[pkg://my_pkg.conf]`` or ``[file:///path/to/conf]``. Docs: "Extending ppo-bench".
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Iterable

from ppo_bench.common.errors import ConfigError

ENTRY_POINTS = "ppo_bench.extensions"


def import_extensions(names: Iterable[str] = ()) -> list[str]:
    """Import every installed ``ppo_bench.extensions`` entry point, then each named module; returns the modules
    imported. A module that cannot be found is a ConfigError naming it; an error raised inside it is its own."""
    done = []
    for ep in entry_points(group=ENTRY_POINTS):
        done.append(import_named(ep.value.split(":")[0], f"the entry point {ep.name!r} of group {ENTRY_POINTS}"))
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"extensions={list(names)} must be a list of module names, e.g. [my_pkg.algos]")
        done.append(import_named(name, "extensions"))
    return done


def import_named(module: str, where: str, to: str = "") -> str:
    """Import a module a user named (``where``: the option that named it): that module missing is a ConfigError in
    one line; a module missing inside it is the module's own bug and is raised as it is."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise ConfigError(f"{where}: no module named {module!r}{to} (is its package installed, or its folder on "
                              "PYTHONPATH?)") from None
        raise
    return module
