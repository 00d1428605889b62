"""Environments that check every action they are sent, for the tests of action spaces and the fault drill
(``tests/test_action_spaces.py``, ``scripts/fault_drill.py``): a ``Probe`` acts in the space of ``SPACES[kind]``
and fails (AssertionError) on an action outside it — for a Box, one of another shape or a dtype that is not
real-valued (bounds aside: a Gaussian policy's samples are not clipped unless ``env.clip_actions``); for any
other space, one its ``contains`` refuses. Imported as ``probe_envs:<id>`` (Gymnasium's ``module:id``) with this
folder on the path, or as ``scripts.probe_envs``."""

import gymnasium as gym
import numpy as np

SPACES = {
    "box": lambda shape, n, start: gym.spaces.Box(-2.0, 1.0, tuple(shape), np.float32),
    "box64": lambda shape, n, start: gym.spaces.Box(-2.0, 1.0, tuple(shape), np.float64),
    "discrete": lambda shape, n, start: gym.spaces.Discrete(n, start=start),
    "int_box": lambda shape, n, start: gym.spaces.Box(0, 5, tuple(shape), np.int64),
    "multidiscrete": lambda shape, n, start: gym.spaces.MultiDiscrete([n, n + 1]),
    "multibinary": lambda shape, n, start: gym.spaces.MultiBinary(n),
    "tuple": lambda shape, n, start: gym.spaces.Tuple((gym.spaces.Discrete(n), gym.spaces.Discrete(2))),
    "dict": lambda shape, n, start: gym.spaces.Dict({"a": gym.spaces.Discrete(n)}),
}
MODELLED = ("box", "box64", "discrete")  # the spaces the policy acts in (``ppo_bench.rl.engine.envs.ActionSpace``)


class Probe(gym.Env):
    """Episodes of 8 steps with random observations; the reward prefers actions near 0.5 (a Box) or the space's
    second action (a Discrete), so that a policy has something to learn."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float64)

    def __init__(self, kind="box", shape=(2,), n=3, start=0):
        self.action_space = SPACES[kind](list(shape), int(n), int(start))
        self.kind, self.t = kind, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3), {}

    def step(self, action):
        a = np.asarray(action)
        if self.kind.startswith("box"):
            if a.shape != self.action_space.shape or not np.issubdtype(a.dtype, np.floating):
                raise AssertionError(f"action {action!r} is not of {self.action_space}")
            reward = -float(np.square(a - 0.5).mean())
        else:
            if not self.action_space.contains(action):
                raise AssertionError(f"action {action!r} is not of {self.action_space}")
            reward = float(action == getattr(self.action_space, "start", 0) + 1)
        self.t += 1
        return self.np_random.uniform(-1, 1, 3), reward, False, self.t >= 8, {}


gym.register("PpoBenchProbe-v0", entry_point=Probe)
gym.register("Box2x3-v0", entry_point=Probe, kwargs={"kind": "box", "shape": (2, 3)})
gym.register("DiscreteFrom1-v0", entry_point=Probe, kwargs={"kind": "discrete", "n": 3, "start": 1})
gym.register("MultiDiscrete-v0", entry_point=Probe, kwargs={"kind": "multidiscrete", "n": 2})
