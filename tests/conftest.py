import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ppo_bench.rl.engine.config import CONF_DIR, register_configs

register_configs()
# the tools that exercise the library (scripts/: the fault drill, reference runs, benchmarks) import as `scripts.*`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
os.environ.setdefault("CI", "1")  # no progress bars in test output


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config tree with overrides, run outputs under tmp_path."""

    def _make(*overrides: str):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"run_root={tmp_path}/runs", "progress=never", *overrides])

    _make.root = tmp_path
    return _make


@pytest.fixture(scope="session")
def trained_and_packed():
    """``trained_and_packed(root, *overrides)``: runs of the real config tree trained under ``root/runs`` and packed
    into ``root/archive`` (the archive tool's ``pack``), for a module's fixture: what the tests of the readers damage
    and the tests of the commands read."""
    from ppo_bench.analysis import archive
    from ppo_bench.rl.launch import train_from_config

    def _train(root: Path, *overrides: str) -> Path:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            train_from_config(compose("config", overrides=[f"run_root={root}/runs", "progress=never", *overrides]))
        archive.pack(root / "runs", root / "archive")
        return root

    return _train
