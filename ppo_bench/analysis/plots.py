"""The paper-style figures: learning curves per environment, and the Table-1 scores with rliable's CIs."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np

from ppo_bench.analysis.runs import Run
from ppo_bench.analysis.table1 import Table1
from ppo_bench.common.atomic import atomic_write_bytes

CURVE_POINTS = 100  # points on the timestep axis
CURVE_WINDOW = 2  # a point averages the episodes that ended in the last CURVE_WINDOW grid spacings
FAMILY_CMAP = {"none": None, "clip": "Blues", "kl_adaptive": "Greens", "kl_fixed": "Oranges"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def setting_colors(t: Table1) -> dict[str, tuple]:
    """One hue per objective family (black for no clipping), darker for larger hyperparameters."""
    plt = _pyplot()
    families: dict[str, list[str]] = {}
    for s in t.settings:
        families.setdefault(t.table[t.table.setting == s].objective.iloc[0], []).append(s)
    colors = {}
    extra = iter(plt.get_cmap("tab10").colors)
    for family, members in families.items():
        if family == "none":
            colors.update({s: (0.0, 0.0, 0.0, 1.0) for s in members})
        elif family in FAMILY_CMAP:
            cmap = plt.get_cmap(FAMILY_CMAP[family])
            shades = np.linspace(0.45, 0.95, len(members)) if len(members) > 1 else [0.75]
            colors.update({s: cmap(x) for s, x in zip(members, shades)})
        else:
            colors.update({s: next(extra) for s in members})
    return colors


def windowed_returns(steps: np.ndarray, returns: np.ndarray, grid: np.ndarray, window: float) -> np.ndarray:
    """At each grid point g, the mean return of the episodes that ended in (g − window, g]; where none did,
    the return of the last episode that ended before g; NaN before the first episode."""
    order = np.argsort(steps, kind="stable")
    steps, returns = steps[order], returns[order]
    csum = np.concatenate([[0.0], np.cumsum(returns)])
    hi = np.searchsorted(steps, grid, side="right")
    lo = np.searchsorted(steps, grid - window, side="right")
    n = hi - lo
    last = np.where(hi > 0, returns[np.maximum(hi - 1, 0)], np.nan) if len(returns) else np.full(len(grid), np.nan)
    return np.where(n > 0, (csum[hi] - csum[lo]) / np.maximum(n, 1), last)


def plot_learning_curves(t: Table1, runs: list[Run], path: Path) -> None:
    """One panel per environment, one line per setting: mean over seeds, shaded ± one std over seeds."""
    plt = _pyplot()
    finished = {(r.env, r.setting): [] for r in runs}
    for r in runs:
        if r.status == "finished" and len(r.steps):
            finished[(r.env, r.setting)].append(r)
    colors = setting_colors(t)
    n = len(t.envs)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
    axes = axes.ravel()
    handles = {}
    for ax, env in zip(axes, t.envs):
        members = [r for s in t.settings for r in finished.get((env, s), [])]
        top = max((int(r.steps.max()) for r in members), default=0)
        grid = np.linspace(0, top, CURVE_POINTS + 1)[1:] if top else np.zeros(0)
        window = CURVE_WINDOW * (grid[0] if len(grid) else 1.0)
        for s in t.settings:
            own = finished.get((env, s), [])
            if not own:
                continue
            curves = np.stack([windowed_returns(r.steps, r.returns, grid, window) for r in own])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points before a seed's first episode
                mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
            (line,) = ax.plot(grid, mean, color=colors[s], lw=1.4, label=t.labels[s])
            ax.fill_between(grid, mean - std, mean + std, color=colors[s], alpha=0.15, lw=0)
            handles[s] = line
        ax.set_title(env, fontsize=11)
        ax.set_xlabel("timesteps")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
    for ax in axes[: len(t.envs)][::ncols]:
        ax.set_ylabel("episode return")
    spare = axes[len(t.envs):]
    for ax in spare:
        ax.axis("off")
    fig.suptitle(f"Episode return: mean of the episodes ending in a sliding window of "
                 f"{100 * CURVE_WINDOW / CURVE_POINTS:g}% of the timesteps", fontsize=11)
    fig.tight_layout()
    legend = dict(handles=[handles[s] for s in t.settings if s in handles], fontsize=9, frameon=False,
                  title="mean over seeds ± 1 std", title_fontsize=9)
    if len(spare):  # the grid's empty slot holds the legend
        spare[0].legend(loc="center", **legend)
    else:  # below the panels: the saved figure's tight bounding box grows to hold it
        fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(4, len(legend["handles"])) or 1,
                   **legend)
    _save(fig, path)
    plt.close(fig)


def plot_scores(t: Table1, path: Path) -> None:
    """Table 1 as a figure: the normalised score of each setting (bars, rliable 95% CIs, paper's value as a
    diamond), beside rliable's IQM and optimality gap with their 95% CIs."""
    plt = _pyplot()
    col = t.column
    colors = setting_colors(t)
    y = np.arange(len(col))[::-1]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.42 * len(col) + 1.6), sharey=True,
                             gridspec_kw={"width_ratios": [1.6, 1, 1]})
    for ax, (name, title) in zip(axes, [("mean", "Normalised score (mean)"), ("iqm", "IQM"),
                                        ("optimality_gap", "Optimality gap")]):
        point = col.normalized_mean if name == "mean" else col[name]
        lo, hi = col[f"{name}_lo"], col[f"{name}_hi"]
        c = [colors[s] for s in col.setting]
        if name == "mean":
            ax.barh(y, point.fillna(0), color=c, alpha=0.75, height=0.7)
            ax.axvline(0, color="grey", lw=0.8)
        else:
            ax.scatter(point, y, color=c, s=25, zorder=3)
        has_ci = np.isfinite(lo.to_numpy())
        ax.errorbar(point[has_ci], y[has_ci], xerr=[(point - lo)[has_ci], (hi - point)[has_ci]], fmt="none",
                    ecolor="black", elinewidth=1, capsize=3)
        if name == "mean":
            paper = np.isfinite(col.paper.to_numpy())
            ax.scatter(col.paper[paper], y[paper], marker="D", color="white", edgecolor="black", s=30, zorder=4,
                       label="paper (Table 1)")
            for (label, v), marker in zip(t.variants.items(), "o^sv"):
                ax.scatter(v.column[col.setting].to_numpy(), y, marker=marker, color="none", edgecolor="crimson", s=34,
                           zorder=5, label=f"{label} (on this sweep's scale)")
        ax.set_title(title, fontsize=11)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [f"{lab}  ({r}/{e})" for lab, r, e in zip(col.label, col.runs, col.runs_expected)])
    fig.suptitle(f"Normalised scores over {len(t.scaled_envs)} environment(s) × {len(t.seeds)} seed(s) "
                 "(random = 0, best = 1); 95% stratified-bootstrap CIs (rliable)", fontsize=11)
    fig.tight_layout()
    if axes[0].get_legend_handles_labels()[0]:
        # below the figure's tick labels, whatever its height (the saved bounding box grows to hold it)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(0.0, 0.0), fontsize=9,
                   frameon=False)
    _save(fig, path)
    plt.close(fig)
