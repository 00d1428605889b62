"""TensorBoard logging for LM runs, with the conventions of ``ppo_bench.common.tblog``: one directory per run, the
run's hyperparameters through the HParams plugin (the task's reward weights as one readable string).

Each algorithm names its own scalars, with the names of TRL's trainers: GRPO ``rewards/``, ``losses/``, ``stats/``;
PPO ``objective/``, ``policy/``, ``loss/``, ``val/``, ``returns/``; DPO and KTO ``rewards/``, ``logps/``, ``losses/``
(KTO's ``kl`` and ``count/`` too); the reward model ``losses/`` and ``rewards/``; each ``charts/learning_rate`` and
its phases' seconds under ``perf/``. The harness adds ``perf/step_s`` and ``perf/load_avg_1min``, the held-out
evaluations under ``eval/`` (and an algorithm's own figures at each, e.g. ``train_pairs/``, ``train_examples/``), and
sample completions as text (``samples/train``, ``samples/eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppo_bench.common.tblog import RunLogger, flat_hparams


class LLMRunLogger(RunLogger):
    def __init__(self, run_dir: Path, hparams: dict[str, Any] | None = None, purge_after: int | None = None):
        # the reward functions' weights stay one readable string rather than one column each
        flat = None if hparams is None else flat_hparams(hparams, keep=("rewards",))
        super().__init__(run_dir, flat, purge_after=purge_after)
