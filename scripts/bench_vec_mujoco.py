"""Steps/s of the batched MuJoCo fast path against Gymnasium and against the raw physics.

For each Table-1 task, in one run on one machine: a plain ``mj_step(model, data, nstep=frame_skip)``
loop on one env (the physics rate, no resets), Gymnasium's ``SyncVectorEnv`` and
``BatchedMujocoVectorEnv`` with --envs sub-envs (NEXT_STEP autoreset, resets included), each with
zero and with uniform random in-bounds float32 actions, and the ratios to the physics rate.

A task the fast path does not cover (``--tasks Humanoid-v5``) is measured without the batched column: its
physics/sync ratio bounds what batching it could gain (the batched path cannot step faster than the physics).
Humanoid's physics includes ``mj_rnePostConstraint``, which its observation and contact cost read.
The three are timed in interleaved rounds and each keeps its best round, so that load from other
processes on a shared machine skews the ratios less.

    python scripts/bench_vec_mujoco.py [--seconds 0.4] [--rounds 3] [--envs 33] [--tasks ID ...] [--out FILE]
    python scripts/bench_vec_mujoco.py --tasks Humanoid-v5 --envs 10   # would batching pay for Humanoid?
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from ppo_bench.common.machine import describe
from ppo_bench.rl.engine.vec_mujoco import FAST_TASKS, BatchedMujocoVectorEnv

BANK = 256  # pre-drawn action rows, cycled
# tasks without a fast path whose physics is also measured (the batched path's candidates), and whether their
# step needs mj_rnePostConstraint (cfrc_ext in the observation and the contact cost)
CANDIDATES = {"Humanoid-v5": True}


def _rate(step, batch: int, seconds: float) -> float:
    for _ in range(3):  # warm-up
        step(0)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(10):
            step(n)
            n += 1
    return n * batch / elapsed


def physics_step(env_id: str, actions: np.ndarray):
    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    u = env.unwrapped
    model, data, nstep = u.model, u.data, u.frame_skip
    rows = actions[:, 0].astype(np.float64)

    post = CANDIDATES.get(env_id, False)

    def step(n):
        data.ctrl[:] = rows[n % BANK]
        mujoco.mj_step(model, data, nstep=nstep)
        if post:
            mujoco.mj_rnePostConstraint(model, data)

    return step, 1


def vector_step(cls, env_id: str, actions: np.ndarray):
    fns = [lambda: gym.make(env_id, disable_env_checker=True) for _ in range(actions.shape[1])]
    envs = cls(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    envs.reset(seed=list(range(actions.shape[1])))
    return (lambda n: envs.step(actions[n % BANK])), actions.shape[1]


def best_rates(env_id: str, actions: np.ndarray, seconds: float, rounds: int) -> list[float]:
    runners = [physics_step(env_id, actions), vector_step(SyncVectorEnv, env_id, actions)]
    if env_id in FAST_TASKS:
        runners.append(vector_step(BatchedMujocoVectorEnv, env_id, actions))
    best = [0.0] * len(runners)
    for _ in range(rounds):
        for k, (step, batch) in enumerate(runners):
            best[k] = max(best[k], _rate(step, batch, seconds))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.4, help="timed seconds per measurement and round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    p.add_argument("--envs", type=int, default=33, help="sub-envs per vector env")
    p.add_argument("--tasks", nargs="+", default=list(FAST_TASKS), choices=[*FAST_TASKS, *CANDIDATES])
    p.add_argument("--out", help="also write the figures to this JSON file")
    args = p.parse_args()

    rows = []
    print(f"{'task':<26} {'actions':<7} {'physics':>9} {'sync':>9} {'batched':>9}  "
          f"{'sync/phys':>9} {'batch/phys':>10} {'batch/sync':>10}")
    for env_id in args.tasks:
        space = gym.make(env_id, disable_env_checker=True).action_space
        rng = np.random.default_rng(0)
        for kind in ("zero", "random"):
            shape = (BANK, args.envs, space.shape[0])
            actions = np.zeros(shape) if kind == "zero" else rng.uniform(space.low, space.high, shape)
            actions = actions.astype(np.float32)
            phys, sync, *fast = best_rates(env_id, actions, args.seconds, args.rounds)
            fast = fast[0] if fast else None
            rows.append(dict(env_id=env_id, actions=kind, physics_sps=phys, sync_sps=sync, batched_sps=fast))
            if fast is None:  # a candidate: at most phys / sync faster if batched
                print(f"{env_id:<26} {kind:<7} {phys:>9.0f} {sync:>9.0f} {'—':>9}  {sync / phys:>9.2f} {'—':>10} "
                      f"{'≤ %.2f' % (phys / sync):>10}", flush=True)
                continue
            print(f"{env_id:<26} {kind:<7} {phys:>9.0f} {sync:>9.0f} {fast:>9.0f}  "
                  f"{sync / phys:>9.2f} {fast / phys:>10.2f} {fast / sync:>10.2f}", flush=True)

    if args.out:
        machine = describe("numpy", "mujoco", "gymnasium")
        with open(args.out + ".tmp", "w") as f:
            setup = dict(envs=args.envs, seconds=args.seconds, rounds=args.rounds)
            json.dump(dict(machine=machine, **setup, results=rows), f, indent=2)
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
