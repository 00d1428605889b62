"""Reading a run's checkpoint: the one place the engine, the evaluation command and ``load_policy`` load it."""

from __future__ import annotations

from pathlib import Path

from ppo_bench.common.run_folder import read_checkpoint


def load_checkpoint(path: str | Path) -> dict:
    """The state a run saved (``PopulationTrainer.run_state``): parameters by name, Adam moments,
    normalisation statistics, environment states, counters, as tensors and plain data, on the CPU.

    Read with ``torch.load(weights_only=True)`` (``ppo_bench.common.run_folder.read_checkpoint``): no code runs
    while reading a checkpoint, whoever made it. Unreadable: a ConfigError naming the file."""
    return read_checkpoint(path)
