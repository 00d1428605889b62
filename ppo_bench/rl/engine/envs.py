"""The actors: R runs × N environments each, stepped through one Gymnasium vector env.

The seven MuJoCo tasks of the paper's Table 1 step through ``ppo_bench.rl.engine.vec_mujoco`` (the same
Gymnasium envs, physics stepped directly, observations and rewards computed for all sub-envs at
once, bit-identical to Gymnasium's own step); any other id uses Gymnasium's ``SyncVectorEnv``.
Sub-environment ``r * N + n`` belongs to run r and is seeded with ``seed_r + n``, so a run meets
the same episodes alone or inside a population. Autoreset is Gymnasium's NEXT_STEP mode (see
``ppo_bench.common.losses.gae`` for how reset rows are handled). ``env_state`` / ``set_env_state`` snapshot a
sub-environment exactly (MuJoCo's full integration state, or a pure-Python env's attributes as plain
data), so a resumed run continues bit for bit.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit

from ppo_bench.common.errors import ConfigError
from ppo_bench.rl.engine.vec_mujoco import BatchedMujocoVectorEnv, fast_path_supported


class ActionSpace:
    """How the policy's actions map onto an environment's action space, exactly, or a ConfigError for a space the
    policy does not model (``of``).

    A ``Box`` of any shape and a floating dtype is acted in by a diagonal Gaussian over its ``size`` components,
    flat, each reshaped to the Box's shape on its way to the environment; a ``Discrete(n, start=s)`` by a
    categorical over n choices, the index i sent as the action s + i. Anything else (an integer Box, MultiDiscrete,
    MultiBinary, Tuple, Dict, ...) is refused in one line: sending it a flat vector or an index from 0 would be an
    action of the wrong shape or value."""

    def __init__(self, space: gym.Space):
        self.space = space
        self.gaussian = isinstance(space, gym.spaces.Box)
        if self.gaussian:
            self.dim, self.shape, self.start = int(np.prod(space.shape, dtype=np.int64)), tuple(space.shape), 0
            self.low = np.asarray(space.low, dtype=np.float64).reshape(-1)
            self.high = np.asarray(space.high, dtype=np.float64).reshape(-1)
            self.idle = np.clip(np.zeros(self.dim), self.low, self.high).astype(np.float32)  # a harmless action
        else:
            self.dim, self.shape, self.start = int(space.n), (), int(space.start)
            self.low = self.high = None
            self.idle = np.zeros((), dtype=np.int64)

    @classmethod
    def of(cls, env_id: str, space: gym.Space) -> "ActionSpace":
        """The mapping for ``space``, or a ConfigError naming the space and what the policy acts in."""
        why = None
        if isinstance(space, gym.spaces.Box):
            if not np.issubdtype(space.dtype, np.floating):
                why = f"a Box of {space.dtype} (the Gaussian policy's actions are real numbers)"
            elif int(np.prod(space.shape, dtype=np.int64)) < 1:
                why = "a Box with no component"
        elif not isinstance(space, gym.spaces.Discrete):
            why = f"a {type(space).__name__}"
        if why is not None:
            raise ConfigError(f"env.id={env_id!r} has action space {space}, {why}; the policy acts in a Box of real "
                              "numbers (any shape) or a Discrete (any start)")
        return cls(space)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """The policy's actions for a batch of environments, (B, dim) or (B,), as the space's actions: (B, *shape)
        for a Box, start + index for a Discrete."""
        if self.gaussian:
            return actions.reshape(len(actions), *self.shape)
        return actions + self.start if self.start else actions

    def describe(self) -> str:
        """'a Box of shape (2, 3)' or 'a Discrete of 4 actions from 1': what a policy acts in, for messages."""
        if self.gaussian:
            return f"a Box of shape {self.shape}"
        return f"a Discrete of {self.dim} actions" + (f" from {self.start}" if self.start else "")


def check_spaces(env_id: str, obs_space: gym.Space, act_space: gym.Space) -> ActionSpace:
    """The environment's action mapping (``ActionSpace.of``); an observation space other than a 1-D Box is refused."""
    actions = ActionSpace.of(env_id, act_space)
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise ConfigError(f"env.id={env_id!r} has observation space {obs_space}; supported: 1-D Box")
    return actions


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make``, with the failures a config causes as ConfigErrors: keyword arguments the environment
    does not take (``env.kwargs``) and an environment whose optional dependency is not installed."""
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError(f"env.id={env_id!r} needs a package that is not installed: {str(e).splitlines()[0]}") from None
    except TypeError as e:
        given = {k: v for k, v in kwargs.items() if k not in ("disable_env_checker", "render_mode")}
        if not given:
            raise
        raise ConfigError(f"env.kwargs={given} is not accepted by {env_id}: {e}") from None


def make_vector_env(env_id: str, seeds: Sequence[int], kwargs: dict[str, Any] | None = None) -> SyncVectorEnv:
    kwargs = dict(kwargs or {})
    fns = [lambda: make_env(env_id, disable_env_checker=True, **kwargs) for _ in seeds]
    # the 7 Table-1 MuJoCo tasks step through a batched path that is bit-identical to Gymnasium's
    vector_env = BatchedMujocoVectorEnv if fast_path_supported(env_id, kwargs) else SyncVectorEnv
    envs = vector_env(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    check_spaces(env_id, envs.single_observation_space, envs.single_action_space)
    return envs


def reset(envs: SyncVectorEnv, seeds: Sequence[int]) -> np.ndarray:
    obs, _ = envs.reset(seed=[int(s) for s in seeds])
    return obs


def _time_limit(env: gym.Env) -> TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            return env
        env = env.env
    return None


def _mujoco_state_spec():
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def env_state(envs: SyncVectorEnv, i: int) -> dict:
    """Everything needed to continue sub-env i exactly where it is."""
    if isinstance(envs, BatchedMujocoVectorEnv):  # its state is in the batch between steps
        envs.sync_sub_env(i)
    env = envs.envs[i]
    u = env.unwrapped
    tl = _time_limit(env)
    state = {
        "autoreset": bool(envs._autoreset_envs[i]),
        "elapsed": None if tl is None else tl._elapsed_steps,
        "np_random": None if u._np_random is None else u._np_random.bit_generator.state,
    }
    if hasattr(u, "model") and hasattr(u, "data"):  # MuJoCo
        import mujoco

        spec = _mujoco_state_spec()
        buf = np.empty(mujoco.mj_stateSize(u.model, spec))
        mujoco.mj_getState(u.model, u.data, buf, spec)
        state["mujoco"] = buf
    else:
        state["attributes"] = plain_attributes(env_id_of(env), u)
    return state


def env_id_of(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def _plain(value: Any, where: str) -> Any:
    """A value as tensors and plain Python data (what a checkpoint may hold), or ConfigError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, where) for v in value)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, where) for k, v in value.items()}
    raise ConfigError(f"{where} is a {type(value).__name__}, which a checkpoint cannot hold as data; "
                      "this env cannot be checkpointed and resumed exactly")


def plain_attributes(env_id: str, u: gym.Env) -> dict[str, Any]:
    """A pure-Python env's state: its attributes as tensors and plain data. Spaces, the spec and the random
    generator (saved on its own) are rebuilt by gymnasium.make; any other object is refused (ConfigError)."""
    out = {}
    for k, v in vars(u).items():
        if k in ("spec", "_np_random") or isinstance(v, gym.Space):
            continue
        out[k] = _plain(v, f"env.id={env_id!r}: attribute {k}")
    return out


def _numpy(value: Any, like: Any) -> Any:
    """A checkpoint's tensor back as the NumPy array the env held (tuples and lists element by element)."""
    if isinstance(value, torch.Tensor):
        return value.numpy().astype(like.dtype, copy=True) if isinstance(like, np.ndarray) else value.numpy().copy()
    if isinstance(value, (list, tuple)):
        likes = like if isinstance(like, (list, tuple)) and len(like) == len(value) else [None] * len(value)
        return type(value)(_numpy(v, l) for v, l in zip(value, likes))
    return value


def set_env_state(envs: SyncVectorEnv, i: int, state: dict) -> None:
    env = envs.envs[i]
    u = env.unwrapped
    envs._autoreset_envs[i] = state["autoreset"]
    tl = _time_limit(env)
    if tl is not None:
        tl._elapsed_steps = state["elapsed"]
    if state["np_random"] is not None:
        u._np_random, _ = gym.utils.seeding.np_random(0)
        u._np_random.bit_generator.state = state["np_random"]
    if "mujoco" in state:
        import mujoco

        mujoco.mj_setState(u.model, u.data, np.asarray(state["mujoco"], dtype=np.float64), _mujoco_state_spec())
        mujoco.mj_forward(u.model, u.data)
    elif "attributes" in state:
        for k, v in state["attributes"].items():
            vars(u)[k] = _numpy(v, vars(u).get(k))
    else:  # a checkpoint of an older ppo-bench: a pickled state, which is not loaded (it could run code)
        raise ConfigError("the checkpoint holds a pickled environment state (an older ppo-bench's), which is not "
                          "loaded since unpickling could run code; start that run afresh")
    if isinstance(envs, BatchedMujocoVectorEnv):
        envs.load_sub_env(i)
