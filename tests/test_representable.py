"""Numbers the engine cannot hold are refused in one line naming the key, before anything is built (issue class
5): a hyperparameter is a float32 tensor in the population engine, a step count or seed an int64 one. Checked
against float32 itself over generated values: an accepted value is held as a finite number, non-zero where it
was; a refused one would overflow to infinity or vanish to 0 — or breaks the option's own range."""

import copy
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

import ppo_bench.rl.launch  # noqa: F401 — registers the built-in algorithms
from ppo_bench.common.errors import ConfigError
from ppo_bench.rl.engine.config import validate


def float32_of(x: float) -> float:
    """x as IEEE single precision stores it (struct's 'f': round to nearest; inf where it overflows)."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:  # struct refuses what rounds beyond the largest finite float32
        return math.copysign(math.inf, x)


@pytest.fixture(scope="module")
def base():
    from hydra import compose, initialize_config_dir

    from ppo_bench.rl.engine.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["run_root=/nonexistent", "progress=never"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["algo.lr", "algo.max_grad_norm", "objective.eps", "algo.vf_coef"]),
       value=st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
           [1e39, -1e39, 1e-46, 3.5e38, 3.4e38, 1.5e-45, 1e-45, 0.0, 0.2]))
def test_a_float_the_engine_cannot_hold_is_one_line_naming_it(base, key, value):
    cfg = copy.deepcopy(base)
    OmegaConf.update(cfg, key, value)
    held = float32_of(value) if math.isfinite(value) else value
    try:
        validate(cfg)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{key}=")
        assert "is outside float32" not in str(e) or not math.isfinite(held) or (value != 0 and held == 0)
        assert not math.isfinite(held) or (value != 0 and held == 0) or "must" in str(e)  # or the option's range
        return
    assert math.isfinite(held) and (value == 0) == (held == 0)


@pytest.mark.parametrize("key, value, message", [
    ("total_timesteps", 2 ** 63 - 1, "total_timesteps=9223372036854775807 is outside what the engine counts"),
    ("seed", -(2 ** 62) - 1, "seed=-4611686018427387905 is outside what the engine counts"),
    ("population.seeds", [0, 2 ** 62 + 1], "population.seeds[1]=4611686018427387905 is outside what the engine counts"),
])
def test_a_count_beyond_int64_is_one_line(base, key, value, message):
    cfg = copy.deepcopy(base)
    OmegaConf.update(cfg, key, value)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    OmegaConf.update(cfg, key, [0, 2 ** 62] if isinstance(value, list) else 2 ** 62 if value > 0 else -(2 ** 62))
    try:  # 2^62 itself is counted
        validate(cfg)
    except ConfigError as e:
        assert "outside what the engine counts" not in str(e)


def test_more_memory_than_the_machine_has_is_one_line_before_anything_is_written(make_cfg):
    from ppo_bench.rl.launch import train_from_config

    with pytest.raises(ConfigError) as e:
        train_from_config(make_cfg("env=inverted_pendulum", "env.num_envs=100000000000"))
    assert str(e.value).startswith("1 run(s) × env.num_envs=100000000000, model.hidden=[64, 64]")
    assert "need more memory than this machine has" in str(e.value) and not (make_cfg.root / "runs").exists()
