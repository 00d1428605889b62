"""ppo-bench: the PPO paper's surrogate objectives on Gymnasium/MuJoCo, one run or a population of runs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ppo-bench")  # pyproject.toml's, as installed
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    # ppo_bench.load_policy / export_policy without importing torch for `import ppo_bench`
    if name in ("load_policy", "export_policy"):
        from ppo_bench.rl import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'ppo_bench' has no attribute {name!r}")
