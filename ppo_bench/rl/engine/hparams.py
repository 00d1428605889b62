"""What a run shows in TensorBoard's HParams table (docs: "Outputs and TensorBoard"): a row named like the run
selector names it, with the settings that define the run.

- Its trial id is the run's folder below the sweep's: ``HalfCheetah-v5/clip_eps0.2/seed0`` below ``run_root``, or,
  in a Hydra multirun whose jobs each have their own ``run_root`` inside the sweep folder, ``3/HalfCheetah-v5/...``
  below the sweep folder — what TensorBoard's run selector shows when opened on that folder.
- Its columns are the keys of its resolved config but the operational ones (where it is written, how often it
  is checkpointed, threads, compiling, the population it was trained in: ``NOT_IDENTITY``, total_timesteps
  aside) and the copies (a key whose value is another key's).
- The surrogate objectives' settings (ε, β, d_targ, and those of any objective in the population) are columns of
  every run, empty where its objective has no such setting.
"""

from __future__ import annotations

from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from ppo_bench.common.paths import CONF_DIR
from ppo_bench.common.tblog import hparams_row, interpolated_keys
from ppo_bench.rl.engine.config import NOT_IDENTITY
from ppo_bench.rl.engine.population import RunSpec

# what changes nothing about what is trained: not a hyperparameter (the budget is one, though it is compared apart)
OPERATIONAL = tuple(k for k in NOT_IDENTITY if not k.endswith("total_timesteps"))


def objective_settings(specs: Iterable[RunSpec]) -> list[str]:
    """``objective.<setting>`` for every setting of ppo-bench's objectives (conf/objective/) and of the population's."""
    names = {k for p in (CONF_DIR / "objective").glob("*.yaml") for k in (OmegaConf.load(p) or {}) if k != "name"}
    names |= {k for s in specs for k in (s.objective or {}) if k != "name"}
    return [f"objective.{k}" for k in sorted(names)]


def run_hparams(cfg: DictConfig, config: dict, specs: Iterable[RunSpec]) -> dict[str, Any]:
    """The HParams row of a run whose resolved config (``trainer.run_config``) is ``config``, launched by ``cfg``
    with the population ``specs``."""
    return hparams_row(config, leave_out=(*OPERATIONAL, *interpolated_keys(cfg)), settings=objective_settings(specs))
