"""Table 1's formulas (paper §6.1; docs: "Reproduce Table 1", how the table is computed), one small function each, and the paper's numbers.

* A run's score: the average total reward of its last 100 episodes (``run_score``).
* Per environment, scores are shifted and scaled so that the random policy scores 0 and the best
  result 1 (``normalized_score``), then averaged over the 21 runs (7 envs × 3 seeds) of a setting.
* "Best result" is ambiguous in the paper. Our reading (``best_run_score``, the default): the
  highest score of any single run on that environment, over every setting and seed of the sweep.
  It makes 1 the best run actually observed, so no normalised score exceeds 1 — as in the paper's
  table, whose best row is 0.82. The other reading, the best setting's mean over seeds
  (``best_setting_mean``), is available as ``ppo-bench-report --best setting``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

SCORE_EPISODES = 100  # paper §6.1: "average total reward of the last 100 episodes"
TAG_TAIL = 20  # logged values (iterations) at the end of a run that a tag's end-of-training value averages


def run_score(returns: Sequence[float], last: int = SCORE_EPISODES) -> float:
    """Mean total reward of the last `last` episodes (all of them if fewer); NaN without episodes."""
    tail = np.asarray(returns, dtype=np.float64)[-last:]
    return float(tail.mean()) if len(tail) else float("nan")


def normalized_score(score: float, random: float, best: float) -> float:
    """Random policy → 0, best result → 1. NaN when nothing beat the random policy (scale undefined)."""
    if not best > random:
        return float("nan")
    return (score - random) / (best - random)


def best_run_score(scores: Mapping[tuple[str, int], float]) -> float:
    """The default reading of "best result": the highest single-run score, over all settings and seeds."""
    finite = [s for s in scores.values() if math.isfinite(s)]
    return max(finite) if finite else float("nan")


def best_setting_mean(scores: Mapping[tuple[str, int], float]) -> float:
    """The other reading: the highest mean score over seeds of one setting."""
    by_setting: dict[str, list[float]] = {}
    for (setting, _seed), s in scores.items():
        if math.isfinite(s):
            by_setting.setdefault(setting, []).append(s)
    return max((float(np.mean(v)) for v in by_setting.values()), default=float("nan"))


BEST_READINGS = {"run": best_run_score, "setting": best_setting_mean}


# ---------------------------------------------------------------------------- the paper's Table 1
# (objective setting, normalised score) in the paper's row order; kl_adaptive rows start from β₀ = 1.
PAPER_TABLE1: list[tuple[dict, float]] = [
    ({"name": "none"}, -0.39),
    ({"name": "clip", "eps": 0.1}, 0.76),
    ({"name": "clip", "eps": 0.2}, 0.82),
    ({"name": "clip", "eps": 0.3}, 0.70),
    ({"name": "kl_adaptive", "kl_target": 0.003, "beta": 1.0}, 0.68),
    ({"name": "kl_adaptive", "kl_target": 0.01, "beta": 1.0}, 0.74),
    ({"name": "kl_adaptive", "kl_target": 0.03, "beta": 1.0}, 0.71),
    ({"name": "kl_fixed", "beta": 0.3}, 0.62),
    ({"name": "kl_fixed", "beta": 1.0}, 0.71),
    ({"name": "kl_fixed", "beta": 3.0}, 0.72),
    ({"name": "kl_fixed", "beta": 10.0}, 0.69),
]

# Final returns of PPO-clip at 1M steps from openai/baselines ppo2 (gym v2 envs, 6 seeds): the benchmarks_mujoco1M table of baselines' README.
BASELINES_PPO2_CLIP = {
    "HalfCheetah-v5": 1668.58, "Hopper-v5": 2316.16, "InvertedDoublePendulum-v5": 7102.91,
    "InvertedPendulum-v5": 809.43, "Reacher-v5": -6.71, "Swimmer-v5": 111.19, "Walker2d-v5": 3424.95,
}


def paper_scores() -> dict[str, float]:
    """Setting name (as run folders spell it) → the paper's normalised score."""
    from ppo_bench.rl.engine.population import setting_name

    return {setting_name(spec): value for spec, value in PAPER_TABLE1}


FAMILY_ORDER = ("none", "clip", "kl_adaptive", "kl_fixed")
FAMILY_LABEL = {"none": "No clipping or penalty", "clip": "Clipping", "kl_adaptive": "Adaptive KL",
                "kl_fixed": "Fixed KL"}
HPARAM_LABEL = {"eps": "ε", "kl_target": "d_targ", "beta": "β"}
LABELLED_HPARAM = {"clip": "eps", "kl_adaptive": "kl_target", "kl_fixed": "beta"}


def setting_label(objective: Mapping) -> str:
    """'Clipping, ε = 0.2', as the paper's Table 1 names its rows."""
    name = objective["name"]
    if name not in FAMILY_LABEL:
        return name + "".join(f", {k} = {v:g}" for k, v in sorted(objective.items()) if k != "name")
    key = LABELLED_HPARAM.get(name)
    if key is None or key not in objective:
        return FAMILY_LABEL[name]
    return f"{FAMILY_LABEL[name]}, {HPARAM_LABEL[key]} = {float(objective[key]):g}"


def setting_sort_key(objective: Mapping) -> tuple:
    """The paper's row order: no clipping; clip by ε; adaptive KL by d_targ; fixed KL by β; others last."""
    name = objective["name"]
    rank = FAMILY_ORDER.index(name) if name in FAMILY_ORDER else len(FAMILY_ORDER)
    key = LABELLED_HPARAM.get(name)
    first = float(objective[key]) if key in objective else 0.0
    rest = tuple(float(v) for k, v in sorted(objective.items()) if k not in ("name", key))
    return rank, name, first, rest


def mean_finite(values: Iterable[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def stream_seed(seed: int, key: str) -> int:
    """The bootstrap's random seed for one group: a function of the report's seed and the group's name only, so
    that a group's CI does not depend on which other groups the report has, or in what order it reads them."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:4], "little")


@contextlib.contextmanager
def bootstrap_stream(seed: int):
    """A RandomState of ``seed`` for rliable's bootstrap, and NumPy's global generator seeded with it meanwhile:
    rliable 1.2's StratifiedBootstrap draws its resamples from ``np.random.choice`` (the global generator), not
    from the random_state it is given, so without this a CI depends on whatever drew from NumPy's global
    generator before the report. The global state is restored afterwards."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield np.random.RandomState(seed)
    finally:
        np.random.set_state(saved)


# ---------------------------------------------------------------------------- interval estimates (rliable)
# Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice": the aggregates of a (runs × tasks) matrix
# whose stratified-bootstrap CIs the reports give. Each is the same NumPy arithmetic as rliable 1.2's
# aggregate_mean, aggregate_iqm (SciPy's trim_mean) and aggregate_optimality_gap, so its value is theirs to the bit
# (tests/test_bootstrap_streams.py), without SciPy's per-call array-API dispatch: a report bootstraps 2,000
# resamples of every group, and that dispatch took nine tenths of its time.
AGGREGATES = ("mean", "iqm", "optimality_gap")


def mean_score(scores: np.ndarray) -> float:
    """Agarwal et al. 2021: the mean over tasks of each task's mean over runs."""
    return np.mean(np.mean(scores, axis=0), axis=0)


def iqm(scores: np.ndarray) -> float:
    """Agarwal et al. 2021: the interquartile mean, the mean of the middle half of all runs' scores (25% trimmed)."""
    flat = np.asarray(scores).ravel()
    low = int(0.25 * len(flat))
    high = len(flat) - low
    return np.mean(np.partition(flat, (low, high - 1))[low:high])


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> float:
    """Agarwal et al. 2021: how far the runs fall short of the normalised score ``gamma``, scores above it clipped."""
    return gamma - np.mean(np.minimum(scores, gamma))


def aggregates(scores: np.ndarray) -> np.ndarray:
    return np.array([mean_score(scores), iqm(scores), optimality_gap(scores)])


def interval_estimates(matrices: Mapping[Hashable, np.ndarray], reps: int, seed: int) -> dict[Hashable, dict[str, float]]:
    """rliable's stratified-bootstrap 95% CIs (percentile) of each ``AGGREGATES`` of each group's (runs × tasks)
    matrix: ``{group: {"mean": ..., "mean_lo": ..., "mean_hi": ..., "iqm": ..., ...}}``. Each group draws from its
    own stream (``stream_seed`` of its name; a tuple name joined by "/"), so its CI depends on its own runs only."""
    from rliable import library as rly

    out: dict[Hashable, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch's notice about RandomState, which rliable passes
        for group, m in matrices.items():
            name = "/".join(map(str, group)) if isinstance(group, tuple) else str(group)
            with bootstrap_stream(stream_seed(seed, name)) as rs:
                points, intervals = rly.get_interval_estimates({group: m}, aggregates, reps=reps, random_state=rs)
            out[group] = {}
            for i, agg in enumerate(AGGREGATES):
                out[group][agg] = float(points[group][i])
                out[group][f"{agg}_lo"], out[group][f"{agg}_hi"] = map(float, intervals[group][:, i])
    return out
