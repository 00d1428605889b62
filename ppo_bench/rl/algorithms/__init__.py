"""The built-in algorithms: update rules over the population engine, each registered by name where it is
defined (``ppo_bench.rl.engine.registry``: the interface an algorithm implements).

PPO (``ppo/``: the paper's Algorithm 1 and its Table-1 surrogates) and the baselines of its Figure 3: TRPO,
vanilla policy gradient with an adaptive step size, A2C, A2C with a trust region (ACER's), CEM. Their
settings are ``conf/algo/<name>.yaml``. Importing this package registers them all.
"""

from ppo_bench.rl.algorithms import a2c, acer_trust_region, cem, trpo, vpg  # noqa: F401
from ppo_bench.rl.algorithms.ppo import PPO  # noqa: F401
from ppo_bench.rl.engine.registry import ALGORITHMS, get_algorithm  # noqa: F401
