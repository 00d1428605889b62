import pytest
from hydra import compose, initialize_config_dir

import ppo_bench.llm.launch  # noqa: F401 — registers the built-in algorithms
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.harness.config import register_configs

register_configs()


@pytest.fixture
def llm_cfg(tmp_path):
    """Compose the real conf_llm tree with overrides; run folders under tmp_path."""

    def _make(*overrides: str):
        with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"run_root={tmp_path}/runs", "progress=never", *overrides])

    return _make


@pytest.fixture(scope="session")
def char_tok():
    from ppo_bench.llm.harness.models import char_tokenizer

    tok = char_tokenizer()
    tok.padding_side = "left"
    return tok
