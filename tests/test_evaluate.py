"""Using a trained run: the evaluation command, load_policy and the TorchScript export act alike; videos."""

import json

import numpy as np
import pytest
import torch

from ppo_bench.rl import evaluate as evaluate_mod
from ppo_bench.common.run_folder import read_checkpoint
from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.engine.networks import ActorCritic
from ppo_bench.rl.engine.normalization import ObservationNormalizer
from ppo_bench.rl.policy import load_policy

FAST = ["algo.num_steps=128", "algo.minibatch_size=32", "algo.epochs=2", "total_timesteps=512"]


def trained(make_cfg, *overrides) -> str:
    (_, s), = train_from_config(make_cfg(*FAST, *overrides)).items()
    return s["dir"]


def episodes_with(act, env_id: str, n: int) -> list[float]:
    """The returns of n episodes, episode i reset with seed i: an independent loop over Gymnasium."""
    import gymnasium as gym

    env, out = gym.make(env_id), []
    for i in range(n):
        obs, _ = env.reset(seed=i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total, done = total + r, term or trunc
        out.append(total)
    return out


def test_command_loader_and_export_give_the_same_returns(make_cfg, tmp_path, capsys):
    run = trained(make_cfg, "env=pendulum", "env.clip_actions=true")  # actions clipped to ±2 in training
    assert evaluate_mod.main([run, "--episodes", "3", "--json", str(tmp_path / "e.json")]) == 0
    (s,), = [json.loads((tmp_path / "e.json").read_text())]
    assert s["episodes"] == 3 and s["actions"] == "mean" and s["env"] == "Pendulum-v1"
    assert f"return {s['return_mean']:.2f} ± {s['return_std']:.2f}" in capsys.readouterr().out

    policy = load_policy(run)
    by_loader = episodes_with(policy.act, "Pendulum-v1", 3)
    assert evaluate_mod.main([run, "--export", str(tmp_path / "policy.pt")]) == 0
    exported = torch.jit.load(str(tmp_path / "policy.pt"))
    by_export = episodes_with(lambda o: exported(torch.from_numpy(o)[None])[0].numpy(), "Pendulum-v1", 3)
    assert by_loader == by_export
    assert s["return_mean"] == pytest.approx(np.mean(by_loader), rel=1e-12)
    assert s["return_std"] == pytest.approx(np.std(by_loader), rel=1e-9)


def test_policy_acts_as_training_does_on_raw_observations(make_cfg):
    run = trained(make_cfg, "env=inverted_pendulum", "env.clip_actions=true")
    policy, state = load_policy(run), read_checkpoint(f"{run}/checkpoint.pt")
    obs = np.random.default_rng(0).normal(scale=2.0, size=(7, 4))
    # the training side: the run's normaliser (frozen) and the engine's own acting network
    norm = ObservationNormalizer(1, 4, clip=5.0)
    norm.rms.load_state_dict(0, state["obs_rms"])
    model = ActorCritic(1, 4, 1, True)
    model.load_run_state(0, state["model"])
    params = model.acting_policy()(norm(obs[None], update=False))[0]
    expected = np.clip(params[:, :1], -3.0, 3.0)  # InvertedPendulum-v5's bounds
    np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(policy.act(obs[0]), expected[0], rtol=1e-6, atol=1e-6)  # one observation
    assert policy.act(obs).shape == (7, 1) and policy.act(obs[0]).shape == (1,)
    # sampled actions: around the mean with the run's σ
    rng = np.random.default_rng(1)
    draws = np.stack([policy.act(obs[0], deterministic=False, rng=rng) for _ in range(2000)])
    std = float(np.exp(state["model"]["log_std"]).reshape(-1)[0])
    mean = policy.module.distribution(torch.from_numpy(obs[:1]))[0, 0].item()
    assert abs(np.mean(np.clip(draws, -3, 3)) - np.clip(mean, -3, 3)) < 4 * std / np.sqrt(2000) + 1e-3
    assert isinstance(policy.module, torch.nn.Module)


def test_discrete_policy_takes_the_most_likely_action(make_cfg):
    run = trained(make_cfg, "env=cartpole")
    policy = load_policy(run)
    obs = np.random.default_rng(0).normal(size=(5, 4))
    logits = policy.module.distribution(torch.from_numpy(obs)).numpy()
    np.testing.assert_array_equal(policy.act(obs), logits.argmax(-1))
    assert evaluate_mod.main([run, "--episodes", "2"]) == 0


def test_video_file_has_frames(make_cfg, tmp_path):
    pytest.importorskip("moviepy")
    import imageio_ffmpeg

    run = trained(make_cfg, "env=inverted_pendulum")
    assert evaluate_mod.main([run, "--episodes", "2", "--video", str(tmp_path / "v")]) == 0
    videos = sorted((tmp_path / "v").glob("*.mp4"))
    assert len(videos) == 1  # --video-episodes 1
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(videos[0]))
    assert frames >= 2


def test_every_run_of_a_sweep_folder(make_cfg, tmp_path, capsys):
    train_from_config(make_cfg("env=cartpole", *FAST, "population.seeds=[0,1]"))
    assert evaluate_mod.main([str(tmp_path / "runs"), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "seed0: return" in out and "seed1: return" in out


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nowhere"], "is not a folder"),
    (["{tmp}"], "no trained run"),
    (["{run}", "--env-id", "HalfCheetah-v5"], "has observations of shape (17,)"),
    (["{run}", "--env-id", "NoSuchEnv-v0"], "error: "),
])
def test_bad_input_is_one_line(make_cfg, tmp_path, capsys, args, message):
    run = trained(make_cfg, "env=cartpole") if any("{run}" in a for a in args) else ""
    assert evaluate_mod.main([a.format(tmp=tmp_path, run=run) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
