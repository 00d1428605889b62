"""Where ppo-bench's own files are: the config trees and the random policy's scores ship inside the package.

In a checkout, ``ppo_bench/conf``, ``ppo_bench/conf_llm`` and ``ppo_bench/data/random_scores.csv`` are links to the
repository's ``conf/``, ``conf_llm/`` and ``results/random_scores.csv``; a built wheel holds copies, so an installed
ppo-bench finds them from any folder."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE / "conf"  # ppo-bench's Hydra config tree
LLM_CONF_DIR = PACKAGE / "conf_llm"  # ppo-bench-llm's
RANDOM_SCORES = PACKAGE / "data" / "random_scores.csv"  # a uniform random policy's scores (scripts/random_scores.py)
SOURCE_TREE = PACKAGE.parent  # the repository, when running from a checkout (git commit of the results)
