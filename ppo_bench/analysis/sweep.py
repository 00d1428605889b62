"""A report for any sweep: runs grouped by any keys of their resolved config, seeds pooled.

``sweep_report(folder, by=[...])`` finds every run under ``folder`` (at any depth: a Hydra multirun
puts each job's runs under its own numbered folder), reads each run's ``config.yaml`` and event file,
and groups the runs by the values of the keys in ``by`` (e.g. ``algo.anneal_lr``, ``env.clip_actions``;
the seed never groups). Per environment × group it writes one row (``scores.csv``, ``scores.md``):
the number of seeds, the score of each run (the mean return of its last 100 episodes, paper §6.1)
pooled as mean ± std, rliable's stratified-bootstrap 95% CIs of the mean and the IQM (Agarwal et al.
2021), and, where ``results/random_scores.csv`` has the environment, the fraction of seeds that scored
below the random policy. ``curves.png`` has one row of panels per environment and one panel per tag
(``charts/episodic_return`` first), one line per group: the mean over seeds with a ± 1 std band.
With ``tags``, ``diagnostics.csv`` (and a table in ``scores.md``) gives each tag per environment × group:
the mean over seeds of each run's mean of its last ``tail`` logged values (the end of training), and the
smallest and largest value any of the group's runs logged (e.g. the largest probability ratio, the worst
control cost).
"""

from __future__ import annotations

import io
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ppo_bench.common.tblog import Scalars
from ppo_bench.rl.engine.config import legacy_key

from ppo_bench.analysis.runs import RETURN_TAG, SEED_DIR, count_once, read_run
from ppo_bench.analysis.scores import SCORE_EPISODES, TAG_TAIL, interval_estimates, run_score
from ppo_bench.common.atomic import atomic_write_bytes, atomic_write_text
from ppo_bench.common.paths import RANDOM_SCORES

DEFAULT_RANDOM = RANDOM_SCORES
CURVE_POINTS = 100  # points on the timestep axis of a curve
CURVE_WINDOW = 2  # a point averages the values logged in the last CURVE_WINDOW grid spacings


@dataclass
class SweepRun:
    dir: Path
    env: str
    seed: int
    status: str  # finished | failed | running | started | damaged (not scored: ``damage`` says why)
    config: dict[str, Any]  # flat: 'algo.anneal_lr' → False
    global_step: int = 0  # environment steps trained (status.json)
    scalars: dict[str, Scalars] = field(default_factory=dict)  # tag → its points (steps, values, wall times)
    last: int = SCORE_EPISODES  # episodes its score averages
    damage: str | None = None  # why its numbers are not used (``ppo_bench.analysis.runs.read_run``), one line
    fingerprint: str | None = None  # its identity's: with the seed, what the run is (``count_once``)
    content: str | None = None  # a digest of what it recorded (``RunRecord.content``)
    status_json: dict[str, Any] = field(default_factory=dict)  # its status.json as read: wall_s, cpu_s, ...

    @property
    def score(self) -> float:
        """The mean return of its last ``last`` episodes (paper §6.1); NaN without an episode."""
        return run_score(self.scalars.get(RETURN_TAG, Scalars.empty()).values, self.last)


@dataclass
class SweepReport:
    by: list[str]
    table: pd.DataFrame  # one row per env × group
    runs: list[SweepRun]
    files: list[Path]  # what was written
    notes: list[str] = field(default_factory=list)
    tags: pd.DataFrame | None = None  # build_tag_table's rows


def find_sweep_runs(folder: Path) -> list[Path]:
    """Run folders under ``folder``, at any depth: a folder with a ``config.yaml`` or an ``identity.json`` beside a
    status file or event file (Hydra's own ``.hydra/config.yaml`` has neither); a run whose config.yaml is damaged
    or gone is found by its other files, to be named damaged, not left out unsaid."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    found = set()
    for name in ("config.yaml", "identity.json"):
        for f in folder.rglob(name):
            d = f.parent
            if (d / "status.json").exists() or any(d.glob("events.out.tfevents.*")):
                found.add(d)
    return sorted(found)


def load_sweep_run(run_dir: Path, tags: Sequence[str], last: int = SCORE_EPISODES) -> SweepRun | None:
    """A run folder as the sweep reports read it, every number verified (``ppo_bench.analysis.runs.read_run``): a
    run whose files are damaged or disagree has status ``damaged`` (with a warning line) and is scored nowhere.
    None for a folder that is no ppo-bench run (an LLM run)."""
    rec = read_run(run_dir, tags)
    flat = dict(rec.flat)
    m = SEED_DIR.fullmatch(run_dir.name)
    if "env.id" not in flat:
        if rec.damage is None or m is None:
            return None  # not a ppo-bench run (e.g. an LLM run)
        flat["env.id"] = run_dir.parent.parent.name  # <env>/<setting>/seed<k>: where its settings are unreadable
    seed = flat.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        seed = int(m.group(1)) if m else -1
    st = rec.status or {"status": "started", "global_step": 0}
    run = SweepRun(dir=run_dir, env=str(flat["env.id"]), seed=seed, status=st["status"], config=flat,
                   global_step=int(st.get("global_step", 0)), scalars=rec.scalars, last=last,
                   fingerprint=rec.fingerprint, content=rec.content, status_json=dict(rec.status or {}))
    if rec.damage:
        run.status, run.damage = "damaged", rec.damage
        print(f"warning: run {run_dir} is damaged, not scored: {rec.damage}", file=sys.stderr, flush=True)
    return run


def load_sweep_runs(folder: Path, tags: Sequence[str] = (), last: int = SCORE_EPISODES
                    ) -> tuple[list[SweepRun], list[str]]:
    """Every run under ``folder`` (``load_sweep_run``), each counted once (``ppo_bench.analysis.runs.count_once``),
    and the notes the reports print: a folder found twice or claiming another run's identity and seed, a damaged
    run. The one way the sweep report, Figure 3 and the Implementation-Matters report read their runs."""
    runs = [r for d in find_sweep_runs(folder) if (r := load_sweep_run(d, tags, last)) is not None]
    runs, notes = count_once(runs)
    notes += [f"{r.dir} is damaged, not scored: {r.damage}" for r in runs if r.status == "damaged"]
    return runs, notes


def value_text(v: Any) -> str:
    """How a config value reads in tables and legends: true/false/null as in YAML, numbers as %g."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _sort_value(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, value_text(v))


def group_label(by: Sequence[str], values: Sequence[Any]) -> str:
    """'anneal_lr=false, clip_actions=true': the last part of each key, unless two keys share it."""
    short = [k.rsplit(".", 1)[-1] for k in by]
    names = short if len(set(short)) == len(short) else list(by)
    return ", ".join(f"{n}={value_text(v)}" for n, v in zip(names, values))


def group_intervals(scores: dict[tuple, np.ndarray], reps: int, seed: int) -> dict[tuple, dict[str, float]]:
    """The 95% CIs of the mean and the IQM of each group's run scores (``scores.interval_estimates``; one task: the
    bootstrap resamples seeds). Groups with fewer than two runs get their point only."""
    ci = interval_estimates({k: v.reshape(-1, 1) for k, v in scores.items() if len(v) >= 2}, reps, seed)
    out: dict[tuple, dict[str, float]] = {}
    for k, v in scores.items():
        if k in ci:
            out[k] = {name: ci[k][name] for name in ("mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi")}
        else:
            point = float(v[0]) if len(v) == 1 else float("nan")
            out[k] = dict(mean_lo=float("nan"), mean_hi=float("nan"), iqm=point, iqm_lo=float("nan"),
                          iqm_hi=float("nan"))
    return out


def group_cells(runs: list[SweepRun], by: Sequence[str]) -> tuple[dict[tuple, list[SweepRun]], list[tuple]]:
    """The runs per (env, *values of ``by``), and those keys in the tables' order (env, then each value)."""
    cells: dict[tuple, list[SweepRun]] = {}
    for r in runs:
        cells.setdefault((r.env, *(r.config.get(k) for k in by)), []).append(r)
    return cells, sorted(cells, key=lambda k: (k[0], *(_sort_value(v) for v in k[1:])))


def build_sweep_table(runs: list[SweepRun], by: Sequence[str], random_scores: dict[str, float],
                      reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per environment × group: seeds (finished runs with an episode), failed, unfinished and damaged runs,
    score mean ± std, 95% CIs of the mean and IQM, the random policy's score and the fraction of seeds below it."""
    cells, keys = group_cells(runs, by)
    scores = {k: np.array([r.score for r in cells[k] if r.status == "finished" and math.isfinite(r.score)])
              for k in keys}
    ci = group_intervals(scores, reps, seed)
    rows = []
    for k in keys:
        s, members = scores[k], cells[k]
        random = random_scores.get(k[0], float("nan"))
        finished = [r for r in members if r.status == "finished"]
        rows.append({
            "env": k[0], **{key: value_text(v) for key, v in zip(by, k[1:])},
            "group": group_label(by, k[1:]),
            "seeds": len(s), "failed": sum(r.status == "failed" for r in members),
            "unfinished": sum(r.status in ("running", "started") for r in members),
            "damaged": sum(r.status == "damaged" for r in members),
            "timesteps": max((r.global_step for r in finished), default=0),
            "score_mean": float(s.mean()) if len(s) else float("nan"),
            "score_std": float(s.std(ddof=1)) if len(s) > 1 else float("nan"),
            **ci[k],
            "random_score": random,
            "frac_below_random": float((s < random).mean()) if len(s) and math.isfinite(random) else float("nan"),
        })
    return pd.DataFrame(rows)


def build_tag_table(runs: list[SweepRun], by: Sequence[str], tags: Sequence[str], tail: int = TAG_TAIL) -> pd.DataFrame:
    """One row per environment × group × tag, over the group's finished runs that logged the tag: ``runs``,
    ``end_mean`` (the mean over runs of each run's mean of its last ``tail`` values), ``end_std`` (their std
    over runs), and ``min`` and ``max`` (over every value any of them logged)."""
    cells, keys = group_cells([r for r in runs if r.status == "finished"], by)
    rows = []
    for k in keys:
        for tag in tags:
            series = [(s.steps, s.values) for r in cells[k] if len((s := r.scalars.get(tag, Scalars.empty())).values)]
            if not series:
                continue
            ends = np.array([np.mean(v[np.argsort(st, kind="stable")][-tail:]) for st, v in series])
            every = np.concatenate([v for _, v in series])
            rows.append({"env": k[0], **{key: value_text(v) for key, v in zip(by, k[1:])},
                         "group": group_label(by, k[1:]), "tag": tag, "runs": len(series),
                         "end_mean": float(ends.mean()), "end_std": float(ends.std(ddof=1)) if len(ends) > 1 else float("nan"),
                         "min": float(every.min()), "max": float(every.max())})
    return pd.DataFrame(rows)


def render_tag_markdown(tags_table: pd.DataFrame, by: Sequence[str], tail: int) -> str:
    """scores.md's diagnostics section: per environment, a row per group, a column per tag."""
    if tags_table.empty:
        return ""
    parts = [f"## Logged diagnostics\n\nPer tag: the mean over seeds of each run's mean of its last {tail} logged "
             "values (the end of training), and in brackets the smallest and largest value any seed logged.\n"]
    for env, rows in tags_table.groupby("env", sort=False):
        tags = list(dict.fromkeys(rows["tag"]))
        header = [*by, *tags]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for _, g in rows.groupby(list(by), sort=False):
            first = g.iloc[0]
            cells = {r.tag: f"{_fmt(r.end_mean, '.3g')} [{_fmt(r['min'], '.3g')}, {_fmt(r['max'], '.3g')}]"
                     for _, r in g.iterrows()}
            lines.append("| " + " | ".join([*(str(first[k]) for k in by), *(cells.get(t, "—") for t in tags)]) + " |")
        parts.append(f"### {env}\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def _fmt(x: float, spec: str = ".1f") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


def render_markdown(table: pd.DataFrame, by: Sequence[str], folder: str, command: str, reps: int, last: int,
                    notes: list[str], diagnostics: str = "") -> str:
    parts = [f"# Sweep report: {folder}\n",
             f"Command: `{command}`\n",
             f"Runs grouped by {', '.join(f'`{k}`' for k in by)} (seeds pooled). A run's score is the mean return of "
             f"its last {last} episodes; *mean ± std* over the finished runs (seeds) of a group; 95% CIs of the "
             f"mean and of the IQM by rliable's stratified bootstrap over seeds ({reps} replications); "
             "*below random*: the share of seeds scoring below the random policy (results/random_scores.csv).\n"]
    for env, rows in table.groupby("env", sort=False):
        header = [*by, "seeds", "score mean ± std", "mean 95% CI", "IQM [95% CI]", "below random"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for _, r in rows.iterrows():
            row = [str(r[k]) for k in by]
            std = f" ± {_fmt(r.score_std)}" if math.isfinite(r.score_std) else ""
            extra = "".join([f", {r.failed} failed" if r.failed else "", f", {r.unfinished} unfinished" if r.unfinished else "",
                             f", {r.damaged} damaged (not scored)" if r.damaged else ""])
            ci = f"[{_fmt(r.mean_lo)}, {_fmt(r.mean_hi)}]" if math.isfinite(r.mean_lo) else "—"
            iqm = f"{_fmt(r.iqm)} [{_fmt(r.iqm_lo)}, {_fmt(r.iqm_hi)}]" if math.isfinite(r.iqm_lo) else _fmt(r.iqm)
            below = (f"{r.frac_below_random:.0%} (random {_fmt(r.random_score)})"
                     if math.isfinite(r.frac_below_random) else "—")
            row += [f"{r.seeds}{extra}", f"{_fmt(r.score_mean)}{std}", ci, iqm, below]
            lines.append("| " + " | ".join(row) + " |")
        parts.append(f"## {env}\n\n" + "\n".join(lines) + "\n")
    if diagnostics:
        parts.append(diagnostics)
    if notes:
        parts.append("## Notes\n\n" + "".join(f"- {n}\n" for n in notes))
    return "\n".join(parts)


def windowed_mean(steps: np.ndarray, values: np.ndarray, grid: np.ndarray, window: float) -> np.ndarray:
    """At each grid point g, the mean of the values logged in (g − window, g]; where none were, the last
    value logged before g; NaN before the first."""
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    csum = np.concatenate([[0.0], np.cumsum(values)])
    hi = np.searchsorted(steps, grid, side="right")
    lo = np.searchsorted(steps, grid - window, side="right")
    n = hi - lo
    last = np.where(hi > 0, values[np.maximum(hi - 1, 0)], np.nan) if len(values) else np.full(len(grid), np.nan)
    return np.where(n > 0, (csum[hi] - csum[lo]) / np.maximum(n, 1), last)


def plot_sweep_curves(runs: list[SweepRun], by: Sequence[str], tags: Sequence[str], path: Path,
                      labels: dict[tuple, str] | None = None, columns: int | None = None) -> None:
    """One row of panels per environment, one panel per tag, one line per group (mean over seeds, ± 1 std).

    ``labels`` names the groups in the legend and orders them (groups it lacks follow, labelled by their config
    values); with one tag, ``columns`` wraps the environments' panels into rows of that many, as a paper's
    figure does."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    envs = sorted({r.env for r in runs})
    rank = {g: i for i, g in enumerate(labels)}
    groups = sorted({tuple(r.config.get(k) for k in by) for r in runs},
                    key=lambda g: (rank.get(g, len(rank)), tuple(_sort_value(v) for v in g)))
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    colors = {g: cmap(i % cmap.N) for i, g in enumerate(groups)}
    panels = [(env, tag) for env in envs for tag in tags]
    ncols = min(columns, len(envs)) if columns and len(tags) == 1 else len(tags)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    handles = {}
    for ax, (env, tag) in zip(axes.flat, panels):
        members = [r for r in runs if r.env == env and r.status in ("finished", "failed")]
        with_tag = [r for r in members if len(r.scalars.get(tag, Scalars.empty()).steps)]
        top = max((int(r.scalars[tag].steps.max()) for r in with_tag), default=0)
        grid = np.linspace(0, top, CURVE_POINTS + 1)[1:] if top else np.zeros(0)
        window = CURVE_WINDOW * (grid[0] if len(grid) else 1.0)
        for g in groups:
            own = [r for r in with_tag if tuple(r.config.get(k) for k in by) == g]
            if not own:
                continue
            curves = np.stack([windowed_mean(r.scalars[tag].steps, r.scalars[tag].values, grid, window) for r in own])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points before a seed's first value
                mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
            (line,) = ax.plot(grid, mean, color=colors[g], lw=1.4, label=labels.get(g) or group_label(by, g))
            ax.fill_between(grid, mean - std, mean + std, color=colors[g], alpha=0.15, lw=0)
            handles[g] = line
        ax.set_title(env if len(tags) == 1 else f"{env}: {tag}", fontsize=10)
        if len(tags) == 1 and ax in axes[:, 0]:  # the tag names the y axis of the figure's first column
            ax.set_ylabel("episode return" if tag == RETURN_TAG else tag)
        ax.set_xlabel("timesteps")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    # below the panels, outside them: savefig's tight bounding box grows to hold it, whatever its height
    fig.legend(handles=[handles[g] for g in groups if g in handles], loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(6 if labels else 3, len(groups)),
               fontsize=9, frameon=False,
               title=f"mean over seeds ± 1 std; {CURVE_WINDOW / CURVE_POINTS:.0%}-of-timesteps sliding window",
               title_fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def varied_keys(runs: list[SweepRun]) -> list[str]:
    """Config keys whose value differs across runs (the seed and paths excluded): what --by can group on."""
    runs = [r for r in runs if r.status != "damaged"]  # a damaged run's settings are not to be trusted
    keys = sorted({k for r in runs for k in r.config})
    skip = {"seed", "run_root"}
    return [k for k in keys if k not in skip and len({value_text(r.config.get(k)) for r in runs}) > 1]


def sweep_report(folder: str | Path, by: Sequence[str], tags: Sequence[str] = (), out_dir: str | Path | None = None,
                 random_scores: str | Path | None = DEFAULT_RANDOM, last: int = SCORE_EPISODES, reps: int = 2000,
                 seed: int = 0, command: str | None = None, tail: int = TAG_TAIL) -> SweepReport:
    """Group the runs under ``folder`` by the config keys ``by``; write scores.csv, scores.md and curves.png
    (and, with ``tags``, diagnostics.csv) into ``out_dir`` (default ``<folder>/report``). Raises ValueError /
    FileNotFoundError on bad input."""
    from ppo_bench.analysis.random_policy import load_random_scores

    folder = Path(folder)
    by = [legacy_key(k) for k in by]
    if not by:
        raise ValueError("--by needs at least one config key, e.g. --by objective.name,objective.eps")
    if "seed" in by:
        raise ValueError("--by seed: seeds are pooled within a group, never a group of their own")
    tags = [t for t in dict.fromkeys(tags) if t != RETURN_TAG]
    runs, found_notes = load_sweep_runs(folder, tags, last)
    if not runs:
        raise FileNotFoundError(f"no ppo-bench run folders (config.yaml beside an event file) under {folder}")
    for key in by:
        if not any(key in r.config for r in runs if r.status != "damaged"):
            raise ValueError(f"--by {key}: no run's config has that key; keys that vary here: "
                             f"{', '.join(varied_keys(runs)) or 'none'}")
    random = load_random_scores(Path(random_scores)) if random_scores and Path(random_scores).exists() else {}
    table = build_sweep_table(runs, by, random, reps=reps, seed=seed)
    notes = list(found_notes)
    other = [k for k in varied_keys(runs) if k not in by and k != "env.id"]
    if other:
        notes.append(f"these keys also vary across the runs and are pooled within groups: {', '.join(other)}")
    missing_tags = [t for t in tags if not any(len(r.scalars.get(t, Scalars.empty()).steps) for r in runs)]
    if missing_tags:
        notes.append(f"no run logged {', '.join(missing_tags)}")
    out = Path(out_dir) if out_dir is not None else folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "scores.csv", out / "scores.md", out / "curves.png"]
    atomic_write_text(files[0], table.to_csv(index=False, float_format="%.10g"))
    command = command or f"ppo-bench-report {folder} --by {','.join(by)}" + (f" --tags {','.join(tags)}" if tags else "")
    logged = [t for t in tags if t not in missing_tags]
    tag_table = build_tag_table(runs, by, logged, tail)
    if logged:
        files.append(out / "diagnostics.csv")
        atomic_write_text(files[-1], tag_table.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(files[1], render_markdown(table, by, str(folder), command, reps, last, notes,
                                                render_tag_markdown(tag_table, by, tail)))
    plot_sweep_curves(runs, by, [RETURN_TAG, *logged], files[2])
    return SweepReport(by=by, table=table, runs=runs, files=files, notes=notes, tags=tag_table)
