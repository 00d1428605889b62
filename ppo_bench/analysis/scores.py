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

import hashlib
import math
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


# ---------------------------------------------------------------------------- interval estimates (rliable's)
# Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice": the aggregates of a (runs × tasks) matrix
# and their stratified-bootstrap percentile CIs, as rliable 1.2 computes them — to the bit (tests/test_bootstrap_
# streams.py checks both against rliable on generated matrices) — with every resample of a group at once: rliable
# calls the aggregates once per resample in Python, 2,000 times per group of a report.
AGGREGATES = ("mean", "iqm", "optimality_gap")


def mean_score(scores: np.ndarray) -> np.ndarray:
    """Agarwal et al. 2021: the mean over tasks of each task's mean over runs (of each matrix of a stack ``(..., runs,
    tasks)``), rliable's aggregate_mean."""
    return np.mean(np.mean(scores, axis=-2), axis=-1)


def iqm(scores: np.ndarray) -> np.ndarray:
    """Agarwal et al. 2021: the interquartile mean, the mean of the middle half of all runs' scores (25% trimmed;
    rliable's aggregate_iqm, SciPy's trim_mean), of each matrix of a stack ``(..., runs, tasks)``."""
    flat = np.asarray(scores).reshape(*np.shape(scores)[:-2], -1)
    low = int(0.25 * flat.shape[-1])
    high = flat.shape[-1] - low
    return np.mean(np.partition(flat, (low, high - 1), axis=-1)[..., low:high], axis=-1)


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Agarwal et al. 2021: how far the runs fall short of the normalised score ``gamma``, scores above it clipped
    (of each matrix of a stack ``(..., runs, tasks)``), rliable's aggregate_optimality_gap."""
    clipped = np.minimum(scores, gamma)
    return gamma - np.mean(clipped.reshape(*clipped.shape[:-2], -1), axis=-1)


def aggregates(scores: np.ndarray) -> np.ndarray:
    """``AGGREGATES`` of a matrix, or of each matrix of a stack: shape (..., 3)."""
    return np.stack([mean_score(scores), iqm(scores), optimality_gap(scores)], axis=-1)


def stratified_resamples(scores: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """``reps`` resamples of a (runs × tasks) matrix, each task's runs drawn with replacement: the draws of rliable
    1.2's StratifiedBootstrap (``np.random.choice`` of the runs for every cell, in one stream seeded ``seed``)."""
    runs, tasks = scores.shape
    rows = np.random.RandomState(seed).choice(runs, (reps, runs, tasks), replace=True)
    return scores[rows, np.arange(tasks)]


def interval_estimates(matrices: Mapping[Hashable, np.ndarray], reps: int, seed: int) -> dict[Hashable, dict[str, float]]:
    """The stratified-bootstrap 95% CIs (percentile) of each ``AGGREGATES`` of each group's (runs × tasks) matrix, as
    rliable's get_interval_estimates gives them: ``{group: {"mean": ..., "mean_lo": ..., "mean_hi": ..., "iqm": ...,
    ...}}``. Each group draws from its own stream (``stream_seed`` of its name; a tuple name joined by "/"), so its
    CI depends on its own runs only — not on the other groups, their order, or NumPy's global generator."""
    alpha = (1.0 - 0.95) / 2  # the percentiles as arch's conf_int computes them (2.5000000000000022, not 2.5)
    percentiles = [100 * alpha, 100 * (1.0 - alpha)]
    out: dict[Hashable, dict[str, float]] = {}
    for group, m in matrices.items():
        m = np.asarray(m, dtype=np.float64)
        name = "/".join(map(str, group)) if isinstance(group, tuple) else str(group)
        point = aggregates(m)
        resampled = aggregates(stratified_resamples(m, reps, stream_seed(seed, name)))  # (reps, 3)
        out[group] = {}
        for i, agg in enumerate(AGGREGATES):
            out[group][agg] = float(point[i])
            out[group][f"{agg}_lo"], out[group][f"{agg}_hi"] = map(float, np.percentile(resampled[:, i], percentiles))
    return out
