"""Generalised advantage estimation, paper eq. (11)–(12), on a rollout with autoreset rows.

Arrays are time-major (T, ...). Row t holds the step taken from observation o_t. With Gymnasium's
NEXT_STEP autoreset the row after an episode ends is a *reset row*: its action was ignored, its
reward is 0 and o_t is the final observation of the finished episode, so it is no transition
(``valid[t]`` is False) — and V(o_t) of that row is exactly the bootstrap a truncated episode needs.
"""

from __future__ import annotations

import numpy as np


def td_residual(rewards, next_values, terminated, gamma: float):
    # paper eq. (12): δ_t = r_t + γ V(s_{t+1}) − V(s_t) (without the −V(s_t)); no bootstrap past termination
    return rewards + gamma * next_values * (1.0 - terminated)


def gae(rewards, values, terminated, truncated, valid, gamma: float, lam: float):
    """Return (advantages, returns), each (T, ...).

    rewards, terminated, truncated, valid: (T, ...); values: (T + 1, ...) where values[T] is
    V(observation after the last step). Advantages of reset rows are 0.
    """
    T = rewards.shape[0]
    dones = np.logical_or(terminated, truncated).astype(rewards.dtype)
    term = terminated.astype(rewards.dtype)
    valid = valid.astype(rewards.dtype)
    adv = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(T)):
        delta = td_residual(rewards[t], values[t + 1], term[t], gamma) - values[t]
        # paper eq. (11): Â_t = δ_t + (γλ) Â_{t+1}, cut where the episode ended
        last = (delta + gamma * lam * (1.0 - dones[t]) * last) * valid[t]
        adv[t] = last
    return adv, adv + values[:-1]
