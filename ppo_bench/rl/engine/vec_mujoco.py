"""A batched fast path for the seven MuJoCo v5 tasks of the PPO paper's Table 1.

``BatchedMujocoVectorEnv`` is a ``SyncVectorEnv`` of the real ``gym.make`` sub-environments
(reset, seeding, reset noise, ``envs[i]``, ``_autoreset_envs`` and the spaces stay Gymnasium's
own) that replaces only ``step``: the stepped sub-envs' controls are set to the actions and all of
them advance ``frame_skip`` ``mj_step`` substeps in one call of a ``mujoco.batch.Batch`` (MuJoCo's
own batched stepper: one C++ loop over the simulations, documented bit-identical to a loop of
``mj_step`` over one MjData each), exactly the physics of ``MujocoEnv.do_simulation``; then
observations, rewards and terminations of all sub-envs are computed at once in numpy from the
batch's (B, ·) arrays. Gymnasium's per-env Python (``step``, ``_get_obs``, reward terms, the info
dict, ``SyncVectorEnv``'s info merging) costs about as much as the physics; this removes it.

Between steps a sub-env's physical state (its mjSTATE_INTEGRATION row) and its TimeLimit count live
in the batch: a sub-env's own MjData and ``TimeLimit._elapsed_steps`` are brought up to date by
``sync_sub_env(i)`` before anyone reads them, and the batch takes them back with
``load_sub_env(i)`` after they are written (``ppo_bench.rl.engine.envs.env_state`` / ``set_env_state`` do
both). Resets, which go through Gymnasium's own wrappers, are loaded into the batch as they happen.

Results are bit for bit those of Gymnasium 1.4's envs under ``SyncVectorEnv`` in NEXT_STEP
autoreset mode (``tests/test_vec_mujoco.py``), because every number is made by the same floating
point operations in the same order:

- MuJoCo's state after ``mj_step`` is the same, including its staleness: ``xpos``, ``site_xpos``
  and ``qfrc_constraint`` are those computed at the start of the last substep, which is what
  Reacher's ``get_body_com`` and InvertedDoublePendulum's ``site_xpos`` read in Gymnasium too.
- ``mj_rnePostConstraint``, which Gymnasium calls after every step, only fills ``cacc``,
  ``cfrc_int`` and ``cfrc_ext``; none of these seven tasks reads them (Ant and Humanoid do), and
  they do not feed back into the next ``mj_step``, so it is skipped.
- Row reductions run over C-contiguous rows with the same numpy kernel as Gymnasium's 1-D ones
  (``np.sum`` over the last axis; Reacher's norm through the same BLAS dot as ``np.linalg.norm``).
- ``np.float64 ** 2`` on a scalar calls libm ``pow``, which is not always ``x * x``; the squares
  in InvertedDoublePendulum's reward are therefore taken as Python float powers (the same ``pow``).
- Ctrl costs are computed from the action as given, in its dtype (float32 actions give float32
  costs, as ``weight * np.sum(np.square(action))`` does under NumPy 2's promotion rules), and the
  action goes to ``data.ctrl`` unclipped (MuJoCo clamps ctrl-limited actuators itself).

Only a sub-env stack of ``TimeLimit(OrderEnforcing(<task env>))`` (what
``gym.make(id, disable_env_checker=True, **kwargs)`` builds) and the constructor kwargs listed per
task are supported; ``fast_path_supported`` says so before any env is built, and callers fall back
to plain ``SyncVectorEnv`` otherwise. Per-step ``info`` holds the task's reward terms as Gymnasium's envs
report them (``reward_forward``, ``reward_ctrl``, ``reward_survive``, ``reward_dist``, ...), in
``SyncVectorEnv``'s layout; Gymnasium's other info entries (positions, velocities) are not computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from mujoco.batch import Batch
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.inverted_double_pendulum_v5 import InvertedDoublePendulumEnv
from gymnasium.envs.mujoco.inverted_pendulum_v5 import InvertedPendulumEnv
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
from gymnasium.envs.mujoco.swimmer_v5 import SwimmerEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import OrderEnforcing, TimeLimit

__all__ = ["BatchedMujocoVectorEnv", "FAST_TASKS", "fast_path_supported"]


@dataclass
class StepBatch:
    """What a task reads after a step, one row per sub-env (rows of resetting sub-envs are junk)."""

    qpos_before: np.ndarray  # (B, nq), before mj_step
    qpos: np.ndarray  # (B, nq)
    qvel: np.ndarray  # (B, nv)
    extra: np.ndarray | None  # (B, k): the task's extra MjData entries, stacked (FastTask.extra_views)
    action: np.ndarray  # (B, nu), as passed to step (dtype kept)


TaskStep = Callable[[Any, StepBatch], tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class FastTask:
    env_class: type
    step: TaskStep  # (unwrapped sub-env 0, batch) -> (obs, reward, terminated, reward terms as Gymnasium's info)
    reads: tuple[str, ...]  # attributes of the unwrapped env that step reads: equal across sub-envs
    kwargs: frozenset[str]  # gym.make kwargs whose values the fast path reads from the env instance
    # (unwrapped sub-env 0, Batch) -> live (B, k_j) views of the derived MjData entries the task reads
    extra_views: Callable[[Any, Batch], list[np.ndarray]] | None = None


def _ctrl_cost(weight, action: np.ndarray) -> np.ndarray:
    # weight * np.sum(np.square(action)) per row: the same reduction kernel over contiguous rows.
    return weight * np.sum(np.ascontiguousarray(np.square(action)), axis=1)


def _x_velocity(env, b: StepBatch) -> np.ndarray:
    return (b.qpos[:, 0] - b.qpos_before[:, 0]) / env.dt


def _position_velocity_obs(b: StepBatch, skip: int, clip_velocity: bool) -> np.ndarray:
    velocity = np.clip(b.qvel, -10, 10) if clip_velocity else b.qvel
    return np.concatenate((b.qpos[:, skip:], velocity), axis=1)


def _no_termination(b: StepBatch) -> np.ndarray:
    return np.zeros(len(b.qpos), dtype=np.bool_)


# --- the seven tasks: each mirrors its gymnasium/envs/mujoco/<task>_v5.py step() ---------------


def half_cheetah(env, b: StepBatch):
    forward_reward = env._forward_reward_weight * _x_velocity(env, b)
    ctrl_cost = _ctrl_cost(env._ctrl_cost_weight, b.action)
    reward = forward_reward - ctrl_cost
    obs = _position_velocity_obs(b, int(bool(env._exclude_current_positions_from_observation)), False)
    return obs, reward, _no_termination(b), {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}


def swimmer(env, b: StepBatch):
    forward_reward = env._forward_reward_weight * _x_velocity(env, b)
    ctrl_cost = _ctrl_cost(env._ctrl_cost_weight, b.action)
    reward = forward_reward - ctrl_cost
    obs = _position_velocity_obs(b, 2 * bool(env._exclude_current_positions_from_observation), False)
    return obs, reward, _no_termination(b), {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}


def _hopping_reward(env, b: StepBatch, is_healthy: np.ndarray):
    forward_reward = env._forward_reward_weight * _x_velocity(env, b)
    healthy_reward = is_healthy * env._healthy_reward
    rewards = forward_reward + healthy_reward
    ctrl_cost = _ctrl_cost(env._ctrl_cost_weight, b.action)
    reward = rewards - ctrl_cost
    terminated = ~is_healthy & bool(env._terminate_when_unhealthy)
    obs = _position_velocity_obs(b, int(bool(env._exclude_current_positions_from_observation)), True)
    terms = {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost, "reward_survive": healthy_reward}
    return obs, reward, terminated, terms


def hopper(env, b: StepBatch):
    z, angle = b.qpos[:, 1], b.qpos[:, 2]
    state = np.concatenate((b.qpos, b.qvel), axis=1)[:, 2:]  # state_vector()[2:]
    min_state, max_state = env._healthy_state_range
    min_z, max_z = env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    healthy_state = np.all(np.logical_and(min_state < state, state < max_state), axis=1)
    healthy_z = (min_z < z) & (z < max_z)
    healthy_angle = (min_angle < angle) & (angle < max_angle)
    return _hopping_reward(env, b, healthy_state & healthy_z & healthy_angle)


def walker2d(env, b: StepBatch):
    z, angle = b.qpos[:, 1], b.qpos[:, 2]
    min_z, max_z = env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    healthy_z = (min_z < z) & (z < max_z)
    healthy_angle = (min_angle < angle) & (angle < max_angle)
    return _hopping_reward(env, b, healthy_z & healthy_angle)


def reacher(env, b: StepBatch):
    # get_body_com("fingertip") - get_body_com("target"): xpos as of the last substep's start
    vec = b.extra[:, 0:3] - b.extra[:, 3:6]
    norm = np.sqrt((vec[:, None, :] @ vec[:, :, None])[:, 0, 0])  # np.linalg.norm: sqrt(x.dot(x))
    reward_dist = -norm * env._reward_dist_weight
    reward_ctrl = -np.sum(np.ascontiguousarray(np.square(b.action)), axis=1) * env._reward_control_weight
    theta = b.qpos[:, :2]
    obs = np.concatenate((np.cos(theta), np.sin(theta), b.qpos[:, 2:], b.qvel[:, :2], vec[:, :2]), axis=1)
    return obs, reward_dist + reward_ctrl, _no_termination(b), {"reward_dist": reward_dist, "reward_ctrl": reward_ctrl}


def _reacher_views(env, batch: Batch) -> list[np.ndarray]:
    xpos = batch.bind("xpos")  # get_body_com(name) = data.xpos[body id]
    return [xpos[:, env.model.body(name).id] for name in ("fingertip", "target")]


def inverted_pendulum(env, b: StepBatch):
    obs = np.concatenate((b.qpos, b.qvel), axis=1)
    terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
    reward = (~terminated).astype(np.float64)
    return obs, reward, terminated, {"reward_survive": reward}


def _squares(a: np.ndarray) -> np.ndarray:
    # Gymnasium squares np.float64 scalars (libm pow, not always x*x); Python's float ** calls the same pow.
    return np.array([v**2 for v in a.ravel().tolist()], dtype=np.float64).reshape(a.shape)


def inverted_double_pendulum(env, b: StepBatch):
    site, qfrc_constraint = b.extra[:, 0:3], b.extra[:, 3:4]
    x, y = site[:, 0], site[:, 2]  # x, _, y = data.site_xpos[0]
    terminated = y <= 1
    v1, v2 = b.qvel[:, 1], b.qvel[:, 2]
    x2, y2, v1_2, v2_2 = _squares(np.stack((x, y - 2, v1, v2)))
    dist_penalty = 0.01 * x2 + y2
    vel_penalty = 1e-3 * v1_2 + 5e-3 * v2_2
    alive_bonus = env._healthy_reward * (~terminated).astype(np.int64)
    reward = alive_bonus - dist_penalty - vel_penalty
    obs = np.concatenate(
        (
            b.qpos[:, :1],
            np.sin(b.qpos[:, 1:]),
            np.cos(b.qpos[:, 1:]),
            np.clip(b.qvel, -10, 10),
            np.clip(qfrc_constraint, -10, 10),
        ),
        axis=1,
    )
    terms = {"reward_survive": alive_bonus, "distance_penalty": -dist_penalty, "velocity_penalty": -vel_penalty}
    return obs, reward, terminated, terms


def _double_pendulum_views(env, batch: Batch) -> list[np.ndarray]:
    return [batch.bind("site_xpos")[:, 0], batch.bind("qfrc_constraint")[:, :1]]


_COMMON_KWARGS = frozenset({"max_episode_steps", "frame_skip"})
_LOCOMOTION_READS = ("_forward_reward_weight", "_ctrl_cost_weight", "_exclude_current_positions_from_observation")
_LOCOMOTION_KWARGS = frozenset(
    {"forward_reward_weight", "ctrl_cost_weight", "reset_noise_scale"}
    | {"exclude_current_positions_from_observation"}
)
_HEALTH_READS = ("_healthy_reward", "_terminate_when_unhealthy", "_healthy_z_range", "_healthy_angle_range")
_HEALTH_KWARGS = frozenset(
    {"healthy_reward", "terminate_when_unhealthy", "healthy_z_range", "healthy_angle_range"},
)

FAST_TASKS: dict[str, FastTask] = {
    "HalfCheetah-v5": FastTask(HalfCheetahEnv, half_cheetah, _LOCOMOTION_READS, _LOCOMOTION_KWARGS),
    "Swimmer-v5": FastTask(SwimmerEnv, swimmer, _LOCOMOTION_READS, _LOCOMOTION_KWARGS),
    "Hopper-v5": FastTask(
        HopperEnv,
        hopper,
        _LOCOMOTION_READS + _HEALTH_READS + ("_healthy_state_range",),
        _LOCOMOTION_KWARGS | _HEALTH_KWARGS | {"healthy_state_range"},
    ),
    "Walker2d-v5": FastTask(
        Walker2dEnv, walker2d, _LOCOMOTION_READS + _HEALTH_READS, _LOCOMOTION_KWARGS | _HEALTH_KWARGS
    ),
    "Reacher-v5": FastTask(
        ReacherEnv,
        reacher,
        ("_reward_dist_weight", "_reward_control_weight"),
        frozenset({"reward_dist_weight", "reward_control_weight"}),
        _reacher_views,
    ),
    "InvertedPendulum-v5": FastTask(InvertedPendulumEnv, inverted_pendulum, (), frozenset({"reset_noise_scale"})),
    "InvertedDoublePendulum-v5": FastTask(
        InvertedDoublePendulumEnv,
        inverted_double_pendulum,
        ("_healthy_reward",),
        frozenset({"healthy_reward", "reset_noise_scale"}),
        _double_pendulum_views,
    ),
}


def fast_path_supported(env_id: str, kwargs: dict[str, Any] | None = None) -> bool:
    """Whether ``BatchedMujocoVectorEnv`` reproduces ``gym.make(env_id, **kwargs)`` exactly."""
    task = FAST_TASKS.get(env_id)
    if task is None or int(np.__version__.split(".")[0]) < 2:  # NEP 50 promotion (see module doc)
        return False
    return set(kwargs or {}) <= task.kwargs | _COMMON_KWARGS


def _wrapper_stack(env: gym.Env) -> tuple[TimeLimit, Any]:
    """The TimeLimit and the task env of TimeLimit(OrderEnforcing(task env)); ValueError otherwise."""
    if type(env) is TimeLimit and type(env.env) is OrderEnforcing and not isinstance(env.env.env, gym.Wrapper):
        return env, env.env.env
    raise ValueError(f"BatchedMujocoVectorEnv needs gym.make(id, disable_env_checker=True) sub-envs, got {env}")


class BatchedMujocoVectorEnv(SyncVectorEnv):
    """``SyncVectorEnv`` (NEXT_STEP autoreset) whose ``step`` is batched; see the module docstring.

    Same constructor as ``SyncVectorEnv``; the sub-envs must be ``gym.make(id,
    disable_env_checker=True, **kwargs)`` of one id with ``fast_path_supported(id, kwargs)``.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        copy: bool = True,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        super().__init__(env_fns, copy=copy, autoreset_mode=autoreset_mode)
        if self.autoreset_mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"BatchedMujocoVectorEnv needs autoreset_mode NEXT_STEP, got {self.autoreset_mode}")
        env_id = self.envs[0].spec.id if self.envs[0].spec is not None else None
        if env_id not in FAST_TASKS or any(e.spec is None or e.spec.id != env_id for e in self.envs):
            raise ValueError(f"BatchedMujocoVectorEnv needs sub-envs of one of {sorted(FAST_TASKS)}")
        self.task = FAST_TASKS[env_id]
        stacks = [_wrapper_stack(e) for e in self.envs]
        self._time_limits = [tl for tl, _ in stacks]
        self._task_envs = [u for _, u in stacks]
        for u in self._task_envs:
            if type(u) is not self.task.env_class or u.render_mode is not None:
                raise ValueError(f"{env_id}: sub-env {u} is not a plain {self.task.env_class.__name__}")
        reads = ("frame_skip", "dt", *self.task.reads)
        first = [getattr(self._task_envs[0], a) for a in reads]
        for u in self._task_envs[1:]:
            if [getattr(u, a) for a in reads] != first:
                raise ValueError(f"{env_id}: sub-envs differ in one of {reads}")
        self._frame_skip = self._task_envs[0].frame_skip
        self._nu = self._task_envs[0].model.nu
        # One MuJoCo batch steps every sub-env; its bound arrays are live (B, ·) views: qpos, qvel and
        # ctrl of the state rows, the task's derived entries refreshed after every step.
        self._batch = Batch(self._task_envs[0].model, nsim=self.num_envs, nthread=1)
        self._qpos, self._qvel = self._batch.bind("qpos"), self._batch.bind("qvel")
        self._ctrl = self._batch.bind("ctrl")
        self._extra = self.task.extra_views(self._task_envs[0], self._batch) if self.task.extra_views else []
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)  # TimeLimit._elapsed_steps, per sub-env
        self._max_steps = np.array([tl._max_episode_steps for tl in self._time_limits], dtype=np.int64)
        self._all_reset = False  # OrderEnforcing's check, which this step bypasses
        self._all_stepped = np.ones(self.num_envs, dtype=np.bool_)  # step_info's mask when no sub-env reset
        self._all_stepped.flags.writeable = False

    # ---- the batch holds the sub-envs' state between steps ---------------------------------------
    def load_sub_env(self, i: int) -> None:
        """Take sub-env i's state from its own MjData and TimeLimit (after a reset or a write)."""
        u = self._task_envs[i]
        mujoco.mj_getState(u.model, u.data, self._batch.state[i], mujoco.mjtState.mjSTATE_INTEGRATION)
        self._elapsed[i] = self._time_limits[i]._elapsed_steps

    def sync_sub_env(self, i: int) -> None:
        """Write sub-env i's state from the batch into its own MjData (derived fields recomputed by
        mj_forward) and TimeLimit, for whoever reads them next."""
        u = self._task_envs[i]
        mujoco.mj_setState(u.model, u.data, self._batch.state[i], mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(u.model, u.data)
        self._time_limits[i]._elapsed_steps = int(self._elapsed[i])

    def reset(self, *, seed=None, options=None):
        out = super().reset(seed=seed, options=options)
        for i in range(self.num_envs):
            self.load_sub_env(i)
        return out

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self._nu):
            expected = (self.num_envs, self._nu)
            raise ValueError(f"Action dimension mismatch. Expected {expected}, found {actions.shape}")
        if not self._all_reset:
            if not all(e.env.has_reset for e in self.envs):
                raise gym.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
            self._all_reset = True
        resetting = self._autoreset_envs
        qpos_before = self._qpos.copy()
        if resetting.any():  # NEXT_STEP autoreset: their actions are ignored, their resets come below
            stepping = ~resetting
            ids = np.flatnonzero(stepping)
            self._ctrl[ids] = actions[ids]  # data.ctrl[:] = action: float32 → float64 is exact
            self._batch.step(ids=ids, nstep=self._frame_skip)
        else:
            stepping = None
            self._ctrl[...] = actions
            self._batch.step(nstep=self._frame_skip)
        self._elapsed += 1 if stepping is None else stepping
        truncated = self._elapsed >= self._max_steps
        if stepping is not None:
            truncated &= stepping
        extra = np.concatenate(self._extra, axis=1) if self._extra else None
        batch = StepBatch(qpos_before, self._qpos, self._qvel, extra, actions)
        obs, reward, terminated, terms = self.task.step(self._task_envs[0], batch)
        reward = np.asarray(reward, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=np.bool_)
        if stepping is not None:
            for i in np.flatnonzero(resetting).tolist():  # through the wrappers, then into the batch
                obs[i], reward[i], terminated[i] = self.envs[i].reset()[0], 0.0, False
                self.load_sub_env(i)
        self._rewards, self._terminations, self._truncations = reward, terminated, truncated
        self._autoreset_envs = terminated | truncated
        self._observations[...] = obs
        self._env_obs = list(obs)
        return (
            self._observations.copy() if self.copy else self._observations,
            reward.copy(),
            terminated.copy(),
            truncated.copy(),
            self.step_info(terms, stepping),
        )

    def step_info(self, terms: dict[str, np.ndarray], stepping: np.ndarray | None) -> dict[str, np.ndarray]:
        """The reward terms in ``SyncVectorEnv``'s info layout: ``info[k]`` per sub-env, ``info["_k"]`` True where
        the sub-env stepped (an autoreset row's entries come from its reset, which reports none)."""
        # Every step builds this, so the common case (all sub-envs stepped) takes the cheapest NumPy route: one
        # float64 copy per term and one shared read-only mask (the general route cost a single run ~30 µs a step)
        n = self.num_envs
        mask = self._all_stepped if stepping is None else stepping
        info: dict[str, np.ndarray] = {}
        for k, v in terms.items():
            v = np.array(v, dtype=np.float64) if np.shape(v) == (n,) else np.full(n, v, dtype=np.float64)
            if stepping is not None:
                v[~stepping] = 0.0
            info[k], info[f"_{k}"] = v, mask
        return info
