"""Actions of the right shape and value: the policy acts in every action space it models exactly — a Box of any
shape (a Gaussian over its components, reshaped on the way to the environment), a Discrete with any start (the
chosen index plus the start) — and any other space is refused in one line. Tested over generated spaces, unit by
unit and end to end (training, evaluating, exporting on an environment that checks every action it receives)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from ppo_bench.common.errors import ConfigError
from ppo_bench.rl import evaluate as evaluate_mod
from ppo_bench.rl.engine.envs import ActionSpace
from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.policy import load_policy
from scripts.probe_envs import MODELLED, SPACES, Probe


shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3)
spaces = st.fixed_dictionaries({"kind": st.sampled_from(sorted(SPACES)), "shape": shapes, "n": st.integers(1, 5),
                                "start": st.integers(-4, 4)})


@given(spaces, st.data())
def test_each_space_is_acted_in_exactly_or_refused_in_one_line(spec, data):
    space = SPACES[spec["kind"]](spec["shape"], spec["n"], spec["start"])
    try:
        mapping = ActionSpace.of("PpoBenchProbe-v0", space)
    except ConfigError as e:
        assert spec["kind"] not in MODELLED or (spec["kind"].startswith("box") and 0 in spec["shape"])
        assert "\n" not in str(e) and str(space) in str(e)
        return
    assert spec["kind"] in MODELLED
    batch = data.draw(st.integers(1, 4))
    if mapping.gaussian:
        flat = np.asarray(data.draw(st.lists(st.floats(-2, 1, width=32), min_size=batch * mapping.dim,
                                             max_size=batch * mapping.dim)), dtype=np.float32).reshape(batch, -1)
        assert mapping.dim == int(np.prod(space.shape))
        sent = mapping.to_env(flat)
        assert all(space.contains(a.astype(space.dtype)) for a in sent)
        assert np.array_equal(sent.reshape(batch, -1), flat)  # component by component, in order
    else:
        idx = np.asarray(data.draw(st.lists(st.integers(0, mapping.dim - 1), min_size=batch, max_size=batch)))
        sent = mapping.to_env(idx)
        assert all(space.contains(np.int64(a)) for a in sent) and np.array_equal(sent - space.start, idx)


@pytest.fixture(scope="module")
def compose_cfg():
    """A tiny PPO run on the Probe, its action space given by env.kwargs (``probe_cfg``)."""
    from hydra import compose, initialize_config_dir

    from ppo_bench.rl.engine.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["env.id=PpoBenchProbe-v0", "progress=never", "algo.num_steps=16",
                                            "algo.minibatch_size=16", "algo.epochs=1", "total_timesteps=32"])


def probe_cfg(base, root, kwargs):
    cfg = OmegaConf.merge(base, {"run_root": str(root)})
    with open_dict(cfg):
        cfg.env.kwargs = kwargs
    return cfg


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=spaces)
def test_training_evaluating_and_exporting_act_in_the_space(compose_cfg, tmp_path_factory, spec):
    root = tmp_path_factory.mktemp("spaces")
    cfg = probe_cfg(compose_cfg, root, spec)
    try:
        (summary,) = train_from_config(cfg).values()
    except ConfigError as e:  # refused before anything was built or written
        assert spec["kind"] not in MODELLED or 0 in spec["shape"]
        assert "\n" not in str(e) and not any(root.iterdir())
        return
    assert spec["kind"] in MODELLED and summary["status"] == "finished"
    policy = load_policy(summary["dir"])  # the Probe checks every action of these episodes too
    ev = evaluate_mod.evaluate(policy, episodes=2)
    evaluate_mod.evaluate(policy, episodes=1, deterministic=False)
    assert len(ev.returns) == 2
    obs = np.zeros((4, 3))
    traced = torch.jit.load(str(__import__("ppo_bench.rl.policy", fromlist=["export_policy"]).export_policy(
        policy, root / "policy.pt")))
    assert np.array_equal(traced(torch.from_numpy(obs)).numpy(), policy.act(obs))  # the export acts alike


def test_evaluating_on_an_environment_with_other_actions_is_one_line(compose_cfg, tmp_path, capsys):
    cfg = probe_cfg(compose_cfg, tmp_path, {"kind": "discrete", "n": 3, "start": 2})
    (summary,) = train_from_config(cfg).values()
    assert evaluate_mod.main([summary["dir"], "--episodes", "1", "--env-id", "CartPole-v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: CartPole-v1 has observations of shape (4,)")
    gym.register("PpoBenchProbeBox-v0", entry_point=Probe, kwargs={"kind": "box", "shape": [3]})
    assert evaluate_mod.main([summary["dir"], "--episodes", "1", "--env-id", "PpoBenchProbeBox-v0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: PpoBenchProbeBox-v0 has actions in a Box of shape (3,); the policy of {summary['dir']} "
                   "(PpoBenchProbe-v0) acts in a Discrete of 3 actions from 2"]
