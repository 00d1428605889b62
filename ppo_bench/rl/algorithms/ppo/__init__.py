"""PPO (Schulman et al. 2017): the update (``algorithm``) and the paper's surrogate objectives (``objectives``)."""

from ppo_bench.rl.algorithms.ppo.algorithm import PPO

__all__ = ["PPO"]
