"""Reinforcement learning on Gymnasium: the population engine (``rl.engine``), the algorithms over it
(``rl.algorithms``), and the commands that train, evaluate and export (``rl.cli``, ``rl.evaluate``,
``rl.policy``). It does not import ``ppo_bench.llm``."""
