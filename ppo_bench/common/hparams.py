"""The trial id of a run in TensorBoard's HParams table (docs: "Outputs and TensorBoard"), for ppo-bench and
ppo-bench-llm alike: the run's folder as TensorBoard's run selector names it when opened on the sweep."""

from __future__ import annotations

from pathlib import Path


def trial_name(run_dir: Path, run_root: str | Path) -> str:
    """The run's folder below the sweep folder of a Hydra multirun whose ``run_root`` lies inside it, else below
    ``run_root``; its absolute path if it is below neither."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    root = Path(run_root).resolve()
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        sweep = Path(HydraConfig.get().sweep.dir).resolve()
        if root.is_relative_to(sweep):
            root = sweep
    run = Path(run_dir).resolve()
    return run.relative_to(root).as_posix() if run.is_relative_to(root) else str(run)
