"""PPO for language models (RLHF-style): ``loss`` the equations, ``config`` the settings, ``trainer`` the step (rollout,
KL-shaped rewards, GAE, epochs of minibatches). The RL engine's PPO is ``ppo_bench.rl.algorithms.ppo``."""
