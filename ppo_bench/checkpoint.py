"""Reading a run's checkpoint: the one place the engine, the evaluation command and ``load_policy`` load it."""

from __future__ import annotations

from pathlib import Path

import torch


def load_checkpoint(path: str | Path) -> dict:
    """The state a run saved (``PopulationTrainer.run_state``): parameters by name, Adam moments,
    normalisation statistics, environment states, counters. On the CPU.

    The checkpoint holds NumPy arrays and the environments' states besides tensors, so for now it is
    unpickled in full (``weights_only=False``): load only checkpoints you trust."""
    return torch.load(path, map_location="cpu", weights_only=False)
