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

from ppo_bench.common.hparams import trial_name
from ppo_bench.common.tblog import RunLogger, flat_hparams, hparams_row
from ppo_bench.llm.harness.config import NOT_IDENTITY

# what changes nothing about what is trained: not a hyperparameter (the budgets are ones, though)
OPERATIONAL = tuple(k for k in NOT_IDENTITY if k not in ("algo.steps", "max_wall_s"))


class LLMRunLogger(RunLogger):
    def __init__(self, run_dir: Path, hparams: dict[str, Any] | None = None, purge_after: int | None = None):
        """hparams: the run's resolved config. Its HParams row is named like the run selector names the run
        (``common.hparams.trial_name``), without the operational keys, integers as text, and the reward functions'
        weights one readable string rather than one column each."""
        row = name = None
        if hparams is not None:
            row = hparams_row(flat_hparams(hparams, keep=("rewards",)), leave_out=OPERATIONAL)
            name = trial_name(run_dir, hparams["run_root"])
        super().__init__(run_dir, row, purge_after=purge_after, name=name)
