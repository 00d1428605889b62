"""TensorBoard logging for LLM runs, with the conventions of ppo_bench.common.tblog: one directory
per run, scalars under ``rewards/``, ``losses/``, ``stats/``, ``eval/``, ``charts/``, ``perf/``, sample
completions as text, and the run's hyperparameters through the HParams plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppo_bench.common.tblog import RunLogger, flat_hparams


class LLMRunLogger(RunLogger):
    def __init__(self, run_dir: Path, hparams: dict[str, Any] | None = None, purge_after: int | None = None):
        # the reward functions' weights stay one readable string rather than one column each
        flat = None if hparams is None else flat_hparams(hparams, keep=("rewards",))
        super().__init__(run_dir, flat, purge_after=purge_after)
