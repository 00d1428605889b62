"""ppo-bench: the PPO paper's surrogate objectives on Gymnasium/MuJoCo, one run or a population of runs."""

__version__ = "0.1.0"
