"""ppo-bench-eval --export to ONNX: ONNX Runtime acts as the run's torch policy over whole episodes; bad input is
one line. (The TorchScript export is checked beside the evaluation command, in test_evaluate.py.)"""

import sys

import numpy as np
import pytest
import torch

from ppo_bench.rl import evaluate as evaluate_mod
from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.policy import load_policy

FAST = ["algo.num_steps=128", "algo.minibatch_size=32", "algo.epochs=2", "total_timesteps=512"]
# ONNX Runtime's matrix products sum in another order than torch's: the same float32 actions to a few ulps
RTOL, ATOL = 1e-5, 1e-6


def trained(make_cfg, *overrides) -> str:
    (_, s), = train_from_config(make_cfg(*FAST, *overrides)).items()
    return s["dir"]


def exported_session(run: str, path) -> "object":
    ort = pytest.importorskip("onnxruntime")
    assert evaluate_mod.main([run, "--export", str(path)]) == 0
    return ort.InferenceSession(str(path))


def episodes_side_by_side(onnx_act, torch_act, env_id: str, n: int) -> tuple[list[float], list[np.ndarray]]:
    """n whole episodes (episode i reset with seed i) acted by ONNX Runtime; at every step the torch policy's
    action for the same observation beside it. Returns the episodes' returns and the pairs' differences."""
    import gymnasium as gym

    env, returns, diffs = gym.make(env_id), [], []
    for i in range(n):
        obs, _ = env.reset(seed=i)
        total, done = 0.0, False
        while not done:
            action, expected = onnx_act(obs), torch_act(obs)
            assert action.shape == expected.shape and action.dtype == expected.dtype
            diffs.append(np.abs(action.astype(np.float64) - expected))
            obs, r, term, trunc, _ = env.step(action)
            total, done = total + r, term or trunc
        returns.append(total)
    return returns, diffs


@pytest.mark.parametrize("preset, env_id, obs_type, bound", [
    ("pendulum", "Pendulum-v1", "tensor(float)", 2.0),  # classic control: float32 observations
    ("inverted_pendulum", "InvertedPendulum-v5", "tensor(double)", 3.0),  # MuJoCo: float64
])
def test_onnx_runtime_acts_as_the_torch_policy_on_whole_episodes(make_cfg, tmp_path, capsys, preset, env_id,
                                                                 obs_type, bound):
    run = trained(make_cfg, f"env={preset}", "env.clip_actions=true")  # normalisation and clipping in the graph
    session = exported_session(run, tmp_path / "policy.onnx")
    assert "onnxruntime.InferenceSession" in capsys.readouterr().out
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name) == ("obs", obs_type, "action")
    policy = load_policy(run)
    returns, diffs = episodes_side_by_side(lambda o: session.run(None, {"obs": o[None]})[0][0], policy.act,
                                           env_id, 3)
    assert len(returns) == 3 and len(diffs) >= 3
    np.testing.assert_allclose(np.concatenate(diffs), 0, atol=ATOL + RTOL * bound)
    # a batch of any size, observations far outside the training data (clipped by normalisation and bounds)
    dtype = np.float32 if obs_type == "tensor(float)" else np.float64
    obs = np.random.default_rng(0).normal(scale=10.0, size=(7, inp.shape[1])).astype(dtype)
    actions = session.run(None, {"obs": obs})[0]
    np.testing.assert_allclose(actions, policy.act(obs), rtol=RTOL, atol=ATOL)
    assert np.abs(actions).max() <= bound


def test_onnx_export_of_a_discrete_policy_takes_the_same_actions(make_cfg, tmp_path):
    run = trained(make_cfg, "env=cartpole")
    session = exported_session(run, tmp_path / "policy.onnx")
    policy = load_policy(run)
    _, diffs = episodes_side_by_side(lambda o: session.run(None, {"obs": o[None]})[0][0], policy.act,
                                     "CartPole-v1", 3)
    assert all(np.ndim(d) == 0 for d in diffs) and not np.any(diffs)  # the same action index at every step


def test_unknown_export_suffix_is_one_line(tmp_path, capsys):
    assert evaluate_mod.main([str(tmp_path), "--export", str(tmp_path / "policy.onnxx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --export") and ".pt (TorchScript) or .onnx (ONNX)" in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_export_errors_are_one_line(make_cfg, tmp_path, capsys, monkeypatch):
    run = trained(make_cfg, "env=cartpole")
    assert evaluate_mod.main([run, "--export", "/proc/policy.pt"]) == 2  # a folder no one can write into
    assert capsys.readouterr().err == "error: cannot write /proc/policy.pt: No such file or directory\n"
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript raises ImportError
    assert evaluate_mod.main([run, "--export", str(tmp_path / "policy.onnx")]) == 2
    assert capsys.readouterr().err == (f"error: --export {tmp_path / 'policy.onnx'} needs onnxscript; install the "
                                       "onnx extra: pip install 'ppo-bench[onnx]'\n")
    assert not (tmp_path / "policy.onnx").exists()
    monkeypatch.delitem(sys.modules, "onnxscript")
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")  # the dynamo exporter's ONNXProgram: torch 2.6 on
    assert evaluate_mod.main([run, "--export", str(tmp_path / "policy.onnx")]) == 2
    assert capsys.readouterr().err == ("error: --export to ONNX needs torch>=2.6 (its torch.export-based exporter); "
                                       "this is torch 2.5.1+cpu: pip install 'torch>=2.6'\n")
    assert not (tmp_path / "policy.onnx").exists()
