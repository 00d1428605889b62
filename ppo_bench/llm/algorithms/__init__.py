"""The LM algorithms, one folder each: its loss (the equations, one small function each), its config (the schema of
``conf_llm/algo/<name>.yaml`` and its checks) and its trainer (the step, registered by ``@register_lm_algorithm``).

Importing this package imports every folder in it, which registers each algorithm: a new one is a folder here (or a
module of one's own named in ``extensions``) plus its YAML file, and nothing else is edited.
"""

from __future__ import annotations

import importlib
import pkgutil

for _folder in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_folder.name}.trainer")
