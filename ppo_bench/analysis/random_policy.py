"""The random policy's score (docs: "Reproduce Table 1", how the table is computed): uniform random actions, fixed seeds, ≥ 100 episodes.

Normalisation puts the random policy at 0, so its score is measured by the suite itself with the
same environments the runs use (``gymnasium.make(id, **env.kwargs)`` of a ``conf/env`` preset).
Episode i is reset with seed ``seed + i``; actions come from ``action_space.sample()`` after
``action_space.seed(seed)``, i.e. uniform over the Box bounds (or the Discrete choices).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import gymnasium as gym
import numpy as np

COLUMNS = ["env", "episodes", "seed", "score_mean", "score_std", "score_sem", "length_mean"]


def random_policy_episodes(env_id: str, episodes: int, seed: int, kwargs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Total reward and length of each of `episodes` episodes under uniform random actions."""
    env = gym.make(env_id, disable_env_checker=True, **(kwargs or {}))
    env.action_space.seed(seed)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    try:
        for i in range(episodes):
            env.reset(seed=seed + i)
            done = False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                returns[i] += float(reward)
                lengths[i] += 1
                done = terminated or truncated
    finally:
        env.close()
    return returns, lengths


def summarize(env_id: str, seed: int, returns: np.ndarray, lengths: np.ndarray) -> dict:
    n = len(returns)
    std = float(np.std(returns, ddof=1)) if n > 1 else 0.0
    return {"env": env_id, "episodes": n, "seed": seed, "score_mean": float(np.mean(returns)),
            "score_std": std, "score_sem": std / math.sqrt(n), "length_mean": float(np.mean(lengths))}


def write_random_scores(rows: list[dict], path: Path) -> None:
    from ppo_bench.common.atomic import atomic_write_text

    lines = [",".join(COLUMNS)]
    for r in rows:
        lines.append(",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def load_random_scores(path: Path) -> dict[str, float]:
    """env id → the random policy's score (mean total reward per episode)."""
    with open(path, newline="") as f:
        return {row["env"]: float(row["score_mean"]) for row in csv.DictReader(f)}
