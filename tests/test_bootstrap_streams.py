"""A bootstrap CI depends on its own group's runs only: not on which other groups a report has, nor on the order
it reads them in (a report regenerated from an archive equals the original)."""

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from ppo_bench.analysis.scores import aggregates, interval_estimates, iqm, mean_score, optimality_gap, stream_seed


def test_a_settings_ci_ignores_the_other_settings_and_their_order():
    """(rliable 1.2's bootstrap draws from NumPy's global generator whatever random_state it is given: through it,
    two identical calls gave two CIs. Ours draws each group's resamples from a stream of its own.)"""
    rng = np.random.default_rng(0)
    m = {name: rng.normal(size=(3, 7)) for name in ("clip_eps0.1", "clip_eps0.2", "none")}
    alone = interval_estimates({"clip_eps0.2": m["clip_eps0.2"]}, reps=300, seed=0)["clip_eps0.2"]
    np.random.seed(123)
    np.random.random(17)  # whatever drew from the global generator before the report
    before = np.random.get_state()[1].copy()
    assert interval_estimates({"clip_eps0.2": m["clip_eps0.2"]}, reps=300, seed=0)["clip_eps0.2"] == alone
    assert (np.random.get_state()[1] == before).all()  # and the global generator is left as it was
    for order in (["clip_eps0.1", "clip_eps0.2", "none"], ["none", "clip_eps0.2", "clip_eps0.1"]):
        together = interval_estimates({k: m[k] for k in order}, reps=300, seed=0)
        assert together["clip_eps0.2"] == alone
    other_seed = interval_estimates({"clip_eps0.2": m["clip_eps0.2"]}, reps=300, seed=1)["clip_eps0.2"]
    assert other_seed != alone and other_seed["mean"] == alone["mean"]  # the seed moves the CI, not the point


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
              elements=st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, 1.0, -0.0, 0.5, 2.0])))
def test_the_aggregates_are_rliables_to_the_bit(m):
    """mean_score, iqm and optimality_gap against rliable's own aggregate_mean, aggregate_iqm (SciPy's trim_mean) and
    aggregate_optimality_gap: every report's CI is theirs, ties and repeated values included."""
    from rliable import metrics

    ours = (mean_score(m), iqm(m), optimality_gap(m))
    theirs = (metrics.aggregate_mean(m), metrics.aggregate_iqm(m), metrics.aggregate_optimality_gap(m))
    for a, b in zip(ours, theirs):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), (a, b)


_matrices = arrays(np.float64, array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
                   elements=st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, 1.0, -0.0, 0.5, 2.0]))


@settings(max_examples=100, deadline=None)
@given(st.lists(_matrices, min_size=1, max_size=4))
def test_a_stack_of_matrices_aggregates_as_each_matrix_alone(ms):
    """The aggregates of every resample at once (a stack) equal each resample's own, to the bit."""
    shape = ms[0].shape
    stack = np.stack([np.resize(m, shape) for m in ms])
    together = aggregates(stack)
    for k in range(len(stack)):
        assert together[k].tobytes() == aggregates(stack[k]).tobytes()
        assert aggregates(stack[k]).tobytes() == np.array([mean_score(stack[k]), iqm(stack[k]),
                                                           optimality_gap(stack[k])]).tobytes()


def rliables_intervals(m: np.ndarray, reps: int, seed: int) -> dict[str, float]:
    """rliable 1.2's own get_interval_estimates of its own aggregate_mean, aggregate_iqm and aggregate_optimality_gap,
    its bootstrap's draws from NumPy's global generator (where rliable takes them) seeded ``seed``."""
    from rliable import library, metrics

    def func(x):
        return np.array([metrics.aggregate_mean(x), metrics.aggregate_iqm(x), metrics.aggregate_optimality_gap(x)])

    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch's notice about RandomState
            points, intervals = library.get_interval_estimates({"g": m}, func, reps=reps,
                                                               random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)
    out = {}
    for i, agg in enumerate(("mean", "iqm", "optimality_gap")):
        out[agg] = float(points["g"][i])
        out[f"{agg}_lo"], out[f"{agg}_hi"] = map(float, intervals["g"][:, i])
    return out


@settings(max_examples=60, deadline=None)
@given(_matrices, st.integers(1, 120), st.integers(0, 2**31 - 1))
def test_the_intervals_are_rliables_to_the_bit(m, reps, seed):
    """interval_estimates draws every resample at once; its points and CIs equal rliable's, resample by resample."""
    ours = interval_estimates({"g": m}, reps=reps, seed=seed)["g"]
    theirs = rliables_intervals(m, reps, stream_seed(seed, "g"))
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert np.float64(ours[k]).tobytes() == np.float64(theirs[k]).tobytes(), (k, ours[k], theirs[k])
