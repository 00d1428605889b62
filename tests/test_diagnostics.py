"""Per-iteration diagnostics: the env's own reward terms and how the Gaussian policy acted, against loops."""

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.engine.trainer import mean_reward_terms


def test_mean_reward_terms_against_a_loop():
    rng = np.random.default_rng(0)
    T, R, N = 5, 2, 3
    valid = rng.random((T, R, N)) > 0.3
    infos = []
    for t in range(T):
        mask = rng.random(R * N) > 0.2
        info = {"reward_ctrl": np.where(mask, rng.normal(size=R * N), 0.0), "_reward_ctrl": mask,
                "x_position": rng.normal(size=R * N), "_x_position": np.ones(R * N, bool)}
        if t != 2:  # a step where no sub-env reports the forward term (every row reset)
            info.update({"reward_forward": rng.normal(size=R * N), "_reward_forward": np.ones(R * N, bool)})
        infos.append(info)
    out = mean_reward_terms(infos, valid)
    assert set(out) == {"reward_ctrl", "reward_forward"}  # reward terms only
    for k, per_run in out.items():
        for r in range(R):
            xs = [infos[t][k][r * N + n] for t in range(T) for n in range(N)
                  if k in infos[t] and infos[t][f"_{k}"][r * N + n] and valid[t, r, n]]
            assert np.isclose(per_run[r], np.mean(xs))


def test_halfcheetah_logs_control_cost_and_action_statistics(make_cfg, tmp_path):
    cfg = make_cfg("env=halfcheetah", "objective=none", "total_timesteps=512", "algo.num_steps=256",
                   "algo.minibatch_size=64", "algo.epochs=1")
    (summary,) = train_from_config(cfg).values()
    ea = EventAccumulator(summary["dir"])
    ea.Reload()
    scalars = {t: [e.value for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
    for tag in ("env/reward_ctrl", "env/reward_forward", "policy/mean_abs_mean", "policy/mean_std",
                "policy/frac_out_of_bounds", "stats/ratio_max", "stats/kl"):
        assert len(scalars[tag]) == 2, tag
    # first rollout: μ ≈ 0 (policy head 0.01), σ = 1 → E[0.1·Σ_6 a²] ≈ 0.6 and P(|a| > 1) ≈ 0.317 per component
    assert abs(scalars["env/reward_ctrl"][0] + 0.6) < 0.05
    assert abs(scalars["policy/frac_out_of_bounds"][0] - 0.317) < 0.03
    assert scalars["policy/mean_std"][0] == 1.0 and scalars["policy/mean_abs_mean"][0] < 0.1
    # the episode returns are the sum of the terms
