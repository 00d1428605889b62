"""BatchedMujocoVectorEnv against Gymnasium's own SyncVectorEnv: bit for bit, every step."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import ClipAction

from ppo_bench.rl.engine.envs import env_state, set_env_state
from ppo_bench.rl.engine.vec_mujoco import FAST_TASKS, BatchedMujocoVectorEnv, fast_path_supported


def _fns(env_id, kwargs, n):
    return [lambda: gym.make(env_id, disable_env_checker=True, **kwargs) for _ in range(n)]


def _pair(env_id, kwargs, n=3):
    ref = SyncVectorEnv(_fns(env_id, kwargs, n), autoreset_mode=AutoresetMode.NEXT_STEP)
    fast = BatchedMujocoVectorEnv(_fns(env_id, kwargs, n))
    return ref, fast


def _integration_state(env) -> np.ndarray:
    u = env.unwrapped
    state = np.empty(mujoco.mj_stateSize(u.model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(u.model, u.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    return state


def _actions(space, steps, n, scale, dtype, seed=0):
    # up to `scale` times the bounds: Gymnasium passes actions to data.ctrl (and ctrl costs) unclipped
    rng = np.random.default_rng(seed)
    return (rng.uniform(-scale, scale, (steps, n, space.shape[0])) * space.high).astype(dtype)


# (env id, gym.make kwargs, steps, action scale, episode ends that must occur)
CASES = [
    ("HalfCheetah-v5", {}, 1003, 1.5, {"truncated"}),
    ("Swimmer-v5", {}, 1003, 1.5, {"truncated"}),
    ("Reacher-v5", {}, 110, 1.5, {"truncated"}),
    ("Hopper-v5", {}, 300, 3.0, {"terminated"}),
    ("Walker2d-v5", {}, 300, 3.0, {"terminated"}),
    ("InvertedPendulum-v5", {}, 200, 3.0, {"terminated"}),
    ("InvertedDoublePendulum-v5", {}, 300, 3.0, {"terminated"}),
    # short time limits: truncations and terminations interleaved on the terminating tasks
    ("Hopper-v5", {"max_episode_steps": 12}, 200, 1.2, {"terminated", "truncated"}),
    ("Walker2d-v5", {"max_episode_steps": 15}, 200, 1.2, {"terminated", "truncated"}),
    ("InvertedPendulum-v5", {"max_episode_steps": 4}, 150, 1.2, {"terminated", "truncated"}),
    ("InvertedDoublePendulum-v5", {"max_episode_steps": 6}, 150, 1.2, {"terminated", "truncated"}),
    # every non-default kwarg fast_path_supported admits, read from the env instance
    ("HalfCheetah-v5", dict(forward_reward_weight=0.7, ctrl_cost_weight=0.3, reset_noise_scale=0.2,
                            exclude_current_positions_from_observation=False, frame_skip=3,
                            max_episode_steps=40), 100, 1.5, {"truncated"}),
    ("Swimmer-v5", dict(forward_reward_weight=2.0, ctrl_cost_weight=0.01, reset_noise_scale=0.3,
                        exclude_current_positions_from_observation=False, max_episode_steps=40), 100, 1.5,
     {"truncated"}),
    ("Hopper-v5", dict(forward_reward_weight=0.5, ctrl_cost_weight=0.01, healthy_reward=2, reset_noise_scale=0.02,
                       healthy_state_range=(-50.0, 50.0), healthy_z_range=(0.8, 3.0),
                       healthy_angle_range=(-0.3, 0.3),
                       exclude_current_positions_from_observation=False, max_episode_steps=30), 200, 2.0,
     {"terminated", "truncated"}),
    ("Hopper-v5", dict(terminate_when_unhealthy=False, max_episode_steps=60), 130, 3.0, {"truncated"}),
    ("Walker2d-v5", dict(forward_reward_weight=0.5, ctrl_cost_weight=0.01, healthy_reward=0.5, frame_skip=2,
                         healthy_z_range=(0.9, 1.9), healthy_angle_range=(-0.5, 0.5), reset_noise_scale=0.05,
                         exclude_current_positions_from_observation=False, max_episode_steps=30), 200, 2.0,
     {"terminated", "truncated"}),
    ("Walker2d-v5", dict(terminate_when_unhealthy=False, max_episode_steps=60), 130, 3.0, {"truncated"}),
    ("Reacher-v5", dict(reward_dist_weight=0.5, reward_control_weight=3.0, frame_skip=3, max_episode_steps=20),
     50, 1.5, {"truncated"}),
    ("InvertedPendulum-v5", dict(reset_noise_scale=0.05, max_episode_steps=8), 100, 1.0,
     {"terminated", "truncated"}),
    ("InvertedDoublePendulum-v5", dict(healthy_reward=3.0, reset_noise_scale=0.05, max_episode_steps=8), 100, 1.0,
     {"terminated", "truncated"}),
]


def _case_id(case) -> str:
    kwargs = case[1]
    kind = "default" if not kwargs else "limit" if set(kwargs) == {"max_episode_steps"} else "kwargs"
    return f"{case[0]}-{kind}"


def _check_reward_terms(info_ref: dict, info_fast: dict, t: int) -> None:
    """The fast path reports Gymnasium's reward terms (bit for bit, same masks) and nothing else."""
    terms = {k for k in info_ref if k.startswith("reward_") or k.endswith("_penalty")}
    assert terms <= set(info_fast), f"step {t}: missing {terms - set(info_fast)}"
    for k in (k for k in info_fast if not k.startswith("_")):
        mask = info_fast[f"_{k}"]
        assert np.array_equal(mask, info_ref.get(f"_{k}", np.zeros_like(mask))), f"{k}'s mask differs at step {t}"
        if mask.any():
            assert np.array_equal(info_fast[k][mask], np.asarray(info_ref[k], dtype=np.float64)[mask]), f"{k}, step {t}"


@pytest.mark.parametrize("env_id,kwargs,steps,scale,ends", CASES, ids=[_case_id(c) for c in CASES])
def test_bit_identical_to_gymnasium(env_id, kwargs, steps, scale, ends):
    assert fast_path_supported(env_id, kwargs)
    ref, fast = _pair(env_id, kwargs)
    seeds = [3, 4, 5]
    obs_ref, _ = ref.reset(seed=seeds)
    obs_fast, _ = fast.reset(seed=seeds)
    assert np.array_equal(obs_ref, obs_fast)
    seen = {"terminated": 0, "truncated": 0}
    for t, a in enumerate(_actions(ref.single_action_space, steps, 3, scale, np.float32)):
        out_ref, out_fast = ref.step(a), fast.step(a)
        for name, x, y in zip(("obs", "reward", "terminated", "truncated"), out_ref[:4], out_fast[:4]):
            assert x.dtype == y.dtype and np.array_equal(x, y), f"{name} differs at step {t}: {x} vs {y}"
        _check_reward_terms(out_ref[4], out_fast[4], t)
        seen["terminated"] += int(out_ref[2].sum())
        seen["truncated"] += int(out_ref[3].sum())
    assert np.array_equal(ref._autoreset_envs, fast._autoreset_envs)
    for i in range(3):  # the sub-envs' own MjData and TimeLimit, brought up to date from the batch
        fast.sync_sub_env(i)
        assert np.array_equal(_integration_state(ref.envs[i]), _integration_state(fast.envs[i]))
    assert [e._elapsed_steps for e in ref.envs] == [e._elapsed_steps for e in fast.envs]
    for end in ends:
        assert seen[end] > 0, f"no episode was {end}: {seen}"


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Reacher-v5", "InvertedDoublePendulum-v5"])
def test_float64_actions_and_many_envs(env_id):
    """Ctrl costs keep the action's dtype; reductions over 33 rows match the per-row ones."""
    ref, fast = _pair(env_id, {"max_episode_steps": 25}, n=33)
    seeds = list(range(100, 133))
    ref.reset(seed=seeds)
    fast.reset(seed=seeds)
    for a in _actions(ref.single_action_space, 60, 33, 1.5, np.float64, seed=1):
        for x, y in zip(ref.step(a)[:4], fast.step(a)[:4]):
            assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.mark.parametrize("env_id,kwargs", [("Hopper-v5", {}), ("Reacher-v5", {"max_episode_steps": 20})])
def test_env_state_round_trip(env_id, kwargs):
    envs = BatchedMujocoVectorEnv(_fns(env_id, kwargs, 3))
    envs.reset(seed=[7, 8, 9])
    acts = _actions(envs.single_action_space, 47, 3, 2.0, np.float32, seed=2)
    for a in acts[:7]:
        envs.step(a)
    snapshot = [env_state(envs, i) for i in range(3)]

    def play():
        return [envs.step(a)[:4] for a in acts[7:]]

    first = play()
    assert any(out[2].any() or out[3].any() for out in first)  # the replay crosses an autoreset
    for i, state in enumerate(snapshot):
        set_env_state(envs, i, state)
    second = play()
    for out1, out2 in zip(first, second):
        for x, y in zip(out1, out2):
            assert np.array_equal(x, y)


def test_fast_path_supported():
    for env_id in FAST_TASKS:
        assert fast_path_supported(env_id, {})
        assert fast_path_supported(env_id, {"max_episode_steps": 10})
        assert not fast_path_supported(env_id, {"xml_file": "other.xml"})
        assert not fast_path_supported(env_id, {"render_mode": "rgb_array"})
    assert not fast_path_supported("Ant-v5", {})
    assert not fast_path_supported("CartPole-v1", {})
    assert not fast_path_supported("Hopper-v4", {})


def test_refuses_what_it_cannot_reproduce():
    with pytest.raises(ValueError, match="NEXT_STEP"):
        BatchedMujocoVectorEnv(_fns("Hopper-v5", {}, 2), autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="gym.make"):
        BatchedMujocoVectorEnv([lambda: ClipAction(gym.make("Hopper-v5", disable_env_checker=True))])
    with pytest.raises(ValueError, match="one of"):
        BatchedMujocoVectorEnv([lambda: gym.make("Ant-v5", disable_env_checker=True)])
    with pytest.raises(ValueError, match="differ"):
        BatchedMujocoVectorEnv([lambda: gym.make("Hopper-v5", disable_env_checker=True),
                                lambda: gym.make("Hopper-v5", disable_env_checker=True, ctrl_cost_weight=0.5)])
    with pytest.raises(ValueError, match="gym.make"):
        BatchedMujocoVectorEnv([lambda: gym.make("Hopper-v5")])  # with the env checker
    envs = BatchedMujocoVectorEnv(_fns("Hopper-v5", {}, 2))
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.zeros((2, 3), np.float32))
    envs.reset(seed=[0, 1])
    with pytest.raises(ValueError, match="Action dimension"):
        envs.step(np.zeros((2, 2), np.float32))
