"""Means over seeds with 95% confidence intervals, and differences read against the noise, for the LM comparisons
(``scripts/llm_comparison.py``, ``scripts/llm_stabilisers.py``).

The interval is Student's t: mean ± t_{0.975, n−1} · s/√n, s the sample standard deviation (n − 1). With three to five
seeds a percentile bootstrap has too few distinct resamples (ten for three seeds) and comes out too narrow, so the
t-interval is the one used. A difference of two methods is Welch's: the difference of the means ± t_{0.975, ν} · √(s₁²/n₁
+ s₂²/n₂), ν by Welch–Satterthwaite; against a constant (the starting model's greedy accuracy is the same for every
seed) it is the one-sample interval. A difference whose interval holds 0 is read as within the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LEVEL = 0.95


def t_quantile(dof: float) -> float:
    """t_{(1+LEVEL)/2, dof}: Student's t quantile (scipy.stats)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + LEVEL / 2, dof))


@dataclass
class Interval:
    mean: float | None
    lo: float | None  # None: fewer than two values, no interval
    hi: float | None
    n: int
    values: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n, "values": self.values}


def interval(values) -> Interval:
    """Mean and 95% t-interval of the values that are not None."""
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return Interval(None, None, None, 0, [])
    n, mean = len(v), sum(v) / len(v)
    if n < 2:
        return Interval(mean, None, None, n, v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, v)


def difference(a, b) -> Interval:
    """Welch's interval of mean(a) − mean(b); b may be a constant (a number): then the one-sample interval."""
    ia = interval(a)
    if ia.mean is None:
        return Interval(None, None, None, 0)
    if isinstance(b, (int, float)):
        if ia.lo is None:
            return Interval(ia.mean - b, None, None, ia.n)
        return Interval(ia.mean - b, ia.lo - b, ia.hi - b, ia.n)
    ib = interval(b)
    if ib.mean is None:
        return Interval(None, None, None, 0)
    d = ia.mean - ib.mean
    if ia.n < 2 or ib.n < 2:
        return Interval(d, None, None, min(ia.n, ib.n))
    va = sum((x - ia.mean) ** 2 for x in ia.values) / (ia.n - 1) / ia.n
    vb = sum((x - ib.mean) ** 2 for x in ib.values) / (ib.n - 1) / ib.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, min(ia.n, ib.n))
    dof = (va + vb) ** 2 / (va ** 2 / (ia.n - 1) + vb ** 2 / (ib.n - 1))
    half = t_quantile(dof) * se
    return Interval(d, d - half, d + half, min(ia.n, ib.n))


def verdict(d: Interval) -> str:
    """'higher', 'lower', 'within the noise' (the interval holds 0), or 'unknown' (no interval: one seed)."""
    if d.mean is None or d.lo is None:
        return "unknown"
    if d.lo > 0:
        return "higher"
    if d.hi < 0:
        return "lower"
    return "within the noise"


def fmt_interval(i: Interval, digits: int = 3, sign: bool = False, alone: str = "") -> str:
    """'0.515 [0.473, 0.557]' (with ``sign``, '+0.120 [+0.020, +0.220]'); for one seed the mean and ``alone``;
    '—' for none."""
    f = f"{'+' if sign else ''}.{digits}f"
    if i.mean is None:
        return "—"
    if i.lo is None:
        return f"{i.mean:{f}}{alone}"
    return f"{i.mean:{f}} [{i.lo:{f}}, {i.hi:{f}}]"


def fmt_difference(d: Interval, digits: int = 3) -> str:
    """'+0.120 [+0.020, +0.220]'; '+0.120 (one seed: no interval)'."""
    return fmt_interval(d, digits, sign=True, alone=" (one seed: no interval)")
