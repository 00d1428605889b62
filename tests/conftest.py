import os

import pytest
import torch
from hydra import compose, initialize_config_dir

from ppo_bench.config import CONF_DIR, register_configs

register_configs()
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
