"""Table 1 from run folders: per env × setting scores, the normalised Table-1 column, CSV and Markdown.

``build_table1`` does the arithmetic (formulas in ``scores``, interval estimates by ``scores.interval_estimates``, rliable's to the bit);
``write_csv`` and ``render_markdown`` only format what it computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ppo_bench.analysis.runs import Grid, Run, incomplete
from ppo_bench.analysis.scores import (AGGREGATES, BASELINES_PPO2_CLIP, BEST_READINGS, SCORE_EPISODES,
                                       interval_estimates, mean_finite, normalized_score, paper_scores, run_score,
                                       setting_label, setting_sort_key)
from ppo_bench.common.atomic import atomic_write_text

CSV_COLUMNS = ["env", "objective", "setting", "seeds", "timesteps", "score_mean", "score_std", "normalized_mean"]


@dataclass
class Table1:
    envs: list[str]
    settings: list[str]  # in the paper's row order
    seeds: list[int]
    labels: dict[str, str]  # setting → 'Clipping, ε = 0.2'
    runs: pd.DataFrame  # one row per finished run: env, objective, setting, seed, timesteps, episodes, score, normalized
    table: pd.DataFrame  # one row per env × setting, CSV_COLUMNS
    normalizers: pd.DataFrame  # one row per env: random, best
    column: pd.DataFrame  # one row per setting: runs, normalized_mean, rliable point/interval estimates, paper
    incomplete: list[tuple[str, str, int, str]]
    scaled_envs: list[str]  # the envs with a defined normalisation (some run beat the random policy)
    best: str = "run"
    notes: list[str] = field(default_factory=list)
    training_s: dict[str, float] = field(default_factory=dict)  # env → its job's training time (see job_training_s)
    variants: dict[str, "Variant"] = field(default_factory=dict)  # label → an earlier sweep, put on this table's scale


@dataclass
class Variant:
    """An earlier sweep of the same grid (its ``table1.csv``), shown beside this one: what one changed detail
    does to every setting. Its cells are put on *this* table's scale (the same random policy and best result),
    so a difference between the two columns is a difference in raw scores, not in normalisation."""
    path: str
    table: pd.DataFrame  # its table1.csv, one row per env × setting
    normalized: pd.DataFrame  # env × setting → its mean score on this table's scale (may exceed 1)
    column: pd.Series  # setting → mean over this table's scaled envs (NaN where a cell is missing)
    own_column: pd.Series  # setting → mean of its own normalised cells (as its own table1.md reported)


def read_variant(path: str | Path, t: Table1) -> Variant:
    """Load an earlier sweep's ``table1.csv`` and score it on ``t``'s scale."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"variant table {path} is not a file (a table1.csv written by ppo-bench-report)")
    table = pd.read_csv(path)
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"variant table {path} lacks column(s) {', '.join(missing)}; is it a table1.csv?")
    normalized = pd.DataFrame(np.nan, index=t.envs, columns=t.settings)
    for row in table.itertuples():
        if row.env in normalized.index and row.setting in normalized.columns:
            normalized.at[row.env, row.setting] = normalized_score(float(row.score_mean), t.normalizers.at[row.env, "random"],
                                                                   t.normalizers.at[row.env, "best"])
    scaled = normalized.loc[t.scaled_envs]
    column = pd.Series({s: float(scaled[s].mean()) if scaled[s].notna().all() and len(scaled) else float("nan")
                        for s in t.settings})
    own = table[table.env.isin(t.scaled_envs)].groupby("setting").normalized_mean.mean()
    own_column = pd.Series({s: float(own.get(s, float("nan"))) for s in t.settings})
    return Variant(str(path), table, normalized, column, own_column)


def job_training_s(runs: list[Run]) -> dict[str, float]:
    """Per environment, the training time of its job: the runs of one population share its process, so
    the longest ``wall_s`` among them (each summed over resumes; time lost to a kill between
    checkpoints is not in it)."""
    out: dict[str, float] = {}
    for r in runs:
        if math.isfinite(r.wall_s):
            out[r.env] = max(out.get(r.env, 0.0), r.wall_s)
    return out


def build_table1(runs: list[Run], random_scores: dict[str, float], grid: Grid, best: str = "run",
                 last: int = SCORE_EPISODES, reps: int = 2000, seed: int = 0) -> Table1:
    if best not in BEST_READINGS:
        raise ValueError(f"best={best!r}; allowed: {', '.join(BEST_READINGS)}")
    notes: list[str] = []
    keys = set(grid.keys())
    outside = [r for r in runs if r.key not in keys]
    if outside:
        notes.append(f"{len(outside)} run folder(s) outside the grid were left out, e.g. {outside[0].name}")
    runs = [r for r in runs if r.key in keys]
    objectives = {**{r.setting: r.objective for r in runs if r.objective}, **grid.objectives}
    objectives = {s: objectives.get(s, {"name": s.split("_")[0]}) for s in grid.settings}
    settings = sorted(grid.settings, key=lambda s: setting_sort_key(objectives[s]))
    envs = sorted(grid.envs)  # the paper's order (alphabetical), whatever order the sweep ran them in

    rows = [{"env": r.env, "objective": objectives[r.setting]["name"], "setting": r.setting, "seed": r.seed,
             "timesteps": r.global_step, "episodes": len(r.returns), "score": run_score(r.returns, last)}
            for r in runs if r.status == "finished"]
    per_run = pd.DataFrame(rows, columns=["env", "objective", "setting", "seed", "timesteps", "episodes", "score"])

    norm_rows = []
    for env in envs:
        own = per_run[per_run.env == env]
        best_score = BEST_READINGS[best]({(s, k): v for s, k, v in zip(own.setting, own.seed, own.score)})
        random = random_scores.get(env, float("nan"))
        if math.isnan(random):
            notes.append(f"{env}: no random-policy score (scripts/random_scores.py), so no normalised scores")
        elif math.isnan(best_score):
            notes.append(f"{env}: no finished run with a complete episode, so no normalised scores")
        elif not best_score > random:
            notes.append(f"{env}: no result beat the random policy ({best_score:.2f} ≤ {random:.2f}), "
                         "so its normalised scores are undefined")
        norm_rows.append({"env": env, "random": random, "best": best_score})
    normalizers = pd.DataFrame(norm_rows, columns=["env", "random", "best"]).set_index("env")
    per_run["normalized"] = [normalized_score(s, normalizers.at[e, "random"], normalizers.at[e, "best"])
                             for e, s in zip(per_run.env, per_run.score)]

    cells = []
    for env in envs:
        for setting in settings:
            cell = per_run[(per_run.env == env) & (per_run.setting == setting)]
            n = len(cell)
            cells.append({"env": env, "objective": objectives[setting]["name"], "setting": setting, "seeds": n,
                          "timesteps": int(cell.timesteps.min()) if n else None,
                          "score_mean": float(cell.score.mean()) if n else float("nan"),
                          "score_std": float(cell.score.std(ddof=1)) if n > 1 else float("nan"),
                          "normalized_mean": mean_finite(cell.normalized) if n else float("nan")})
    table = pd.DataFrame(cells, columns=CSV_COLUMNS)

    # Table-1 column: the mean over every (env, seed) run of a setting whose env has a defined scale
    scaled_envs = [e for e in envs if np.isfinite(normalizers.at[e, "random"]) and normalizers.at[e, "best"] > normalizers.at[e, "random"]]
    matrices, column = {}, []
    for setting in settings:
        own = per_run[(per_run.setting == setting) & per_run.env.isin(scaled_envs)]
        m = np.full((len(grid.seeds), len(scaled_envs)), np.nan)
        for env, sd, v in zip(own.env, own.seed, own.normalized):
            m[grid.seeds.index(sd), scaled_envs.index(env)] = v
        if scaled_envs and np.isfinite(m).all():
            matrices[setting] = m  # the stratified bootstrap needs every (seed, env) cell
        column.append({"setting": setting, "label": setting_label(objectives[setting]), "runs": len(own),
                       "runs_expected": m.size, "normalized_mean": mean_finite(own.normalized)})
    estimates = interval_estimates(matrices, reps, seed)
    paper = paper_scores()
    for row in column:
        est = estimates.get(row["setting"], {})
        for name in AGGREGATES:
            for suffix in ("", "_lo", "_hi"):
                row[name + suffix] = est.get(name + suffix, float("nan"))
        row["paper"] = paper.get(row["setting"], float("nan"))
    column_df = pd.DataFrame(column)
    incomplete_runs = incomplete(runs, grid)
    if len(scaled_envs) < len(envs):
        notes.append(f"the Table-1 column averages over {len(scaled_envs)} of {len(envs)} environments")
    return Table1(envs, settings, list(grid.seeds), {s: setting_label(objectives[s]) for s in settings}, per_run, table, normalizers,
                  column_df, incomplete_runs, scaled_envs, best, notes, job_training_s(runs))


def write_csv(t: Table1, path: Path) -> None:
    atomic_write_text(path, t.table.to_csv(index=False, float_format="%.6g", na_rep="nan"))


def _fmt(x: float, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _signed(x: float) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:+.2f}"


def render_markdown(t: Table1, command: str, run_roots: list[str], reps: int) -> str:
    n_envs, n_seeds = len(t.scaled_envs), len(t.seeds)
    col_rows = []
    for r in t.column.itertuples():
        ci = f"[{_fmt(r.mean_lo)}, {_fmt(r.mean_hi)}]" if math.isfinite(r.mean_lo) else "—"
        iqm = f"{_fmt(r.iqm)} [{_fmt(r.iqm_lo)}, {_fmt(r.iqm_hi)}]" if math.isfinite(r.iqm) else "—"
        og = f"{_fmt(r.optimality_gap)} [{_fmt(r.optimality_gap_lo)}, {_fmt(r.optimality_gap_hi)}]" \
            if math.isfinite(r.optimality_gap) else "—"
        cells = [r.label, f"`{r.setting}`", f"{r.runs}/{r.runs_expected}", f"**{_fmt(r.normalized_mean)}**",
                 ci, iqm, og, _fmt(r.paper), _signed(r.normalized_mean - r.paper)]
        for v in t.variants.values():
            cells += [_fmt(v.column[r.setting]), _signed(v.column[r.setting] - r.paper)]
        col_rows.append(cells)
    header = ["setting", "run folder", "runs", "normalised score", "95% CI", "IQM [95% CI]",
              "optimality gap [95% CI]", "paper", "− paper"]
    for label in t.variants:
        header += [label, "− paper"]
    col = _md_table(header, col_rows)
    variants = ""
    for label, v in t.variants.items():
        diff_rows = [[t.labels[s], *[_signed(t.table[(t.table.env == e) & (t.table.setting == s)].normalized_mean.iloc[0]
                                             - v.normalized.at[e, s]) for e in t.envs]] for s in t.settings]
        variants += f"""
### This sweep − {label}, per environment (normalised on this table's scale)

{_md_table(["setting", *t.envs], diff_rows)}
"""
    if t.variants:
        listing = "".join(f"- **{label}**: `{v.path}`; its own table normalised it on its own best runs and gave "
                          f"{', '.join(_fmt(x) for x in v.own_column)} (same row order).\n" for label, v in t.variants.items())
        variants = f"""
## Beside an earlier sweep

The variant column(s) above are earlier sweeps of the same grid that differ in one detail, put on this table's
scale: each of their env × setting mean scores is normalised with this sweep's random policy and best result
(so they can exceed 1), then averaged like this sweep's column. "− paper" is the distance to the paper's value.

{listing}{variants}"""

    raw_rows = []
    for setting in t.settings:
        cells = []
        for env in t.envs:
            c = t.table[(t.table.env == env) & (t.table.setting == setting)].iloc[0]
            if c.seeds == 0:
                cells.append("—")
            else:
                std = f" ± {c.score_std:.1f}" if math.isfinite(c.score_std) else ""
                cells.append(f"{c.score_mean:.1f}{std} ({_fmt(c.normalized_mean)})")
        raw_rows.append([t.labels[setting], *cells])
    raw_rows.append(["*random policy* (= 0)", *[_fmt(t.normalizers.at[e, "random"], 1) for e in t.envs]])
    best_name = "best single run" if t.best == "run" else "best setting mean"
    raw_rows.append([f"*{best_name}* (= 1)", *[_fmt(t.normalizers.at[e, "best"], 1) for e in t.envs]])
    raw_rows.append(["*baselines ppo2, clip ε = 0.2*", *[_fmt(BASELINES_PPO2_CLIP.get(e, float("nan")), 1) for e in t.envs]])
    raw = _md_table(["setting", *t.envs], raw_rows)

    if t.incomplete:
        missing = "\n".join(f"- `{e}/{s}/seed{k}`: {why}" for e, s, k, why in t.incomplete)
        missing = (f"{len(t.incomplete)} of {len(t.envs) * len(t.settings) * n_seeds} runs are not in the tables "
                   f"(launching the same sweep again trains them):\n\n{missing}")
    else:
        missing = "None: every run of the grid finished."
    steps = sorted(set(t.runs.timesteps)) if len(t.runs) else []
    hours = {env: sec / 3600 for env, sec in t.training_s.items()}
    timing = _md_table(["environment", "training time of its job (h)"],
                       [[env, f"{h:.2f}"] for env, h in sorted(hours.items())])
    timing += (f"\n\nIn all {sum(hours.values()):.2f} core-hours (one job per environment, one core each; the sweep's "
               "wall time is about this divided by the number of parallel jobs, and never below the longest job). "
               "From the runs' `status.json` (`wall_s`, summed over resumes; a job's runs share its process). "
               "Time lost to kills between checkpoints and process start-up are not included.") if hours else "No run has a status.json yet."
    notes = "\n## Notes\n\n" + "".join(f"- {n}\n" for n in t.notes) if t.notes else ""
    return f"""# Table 1, reproduced

Generated from the TensorBoard event files of the runs under {', '.join(f'`{r}`' for r in run_roots)} by

    {command}

{len(t.runs)} finished runs, {', '.join(f'{s:,}' for s in steps) or 'no'} timesteps each.

## Table 1: normalised score per setting, averaged over {n_envs} environment(s) × {n_seeds} seed(s)

{col}

A run's score is the average total reward of its last {SCORE_EPISODES} episodes (paper §6.1). Per
environment, scores are shifted and scaled so that the random policy scores 0 and the best result 1,
then averaged over the runs of a setting ("normalised score"; its 95% CI, the IQM and the optimality
gap are rliable's stratified-bootstrap estimates over seeds within environments, {reps:,} replications).
**Reading of "best result"**: {'the highest score of any single run on that environment, over every setting and seed of this sweep (so no normalised score exceeds 1)' if t.best == 'run' else 'the highest mean over seeds of one setting on that environment'}.
The random policy's scores are `results/random_scores.csv` (uniform random actions, fixed seeds, see `results/README.md`).

## Scores per environment: mean ± std over seeds (normalised)

{raw}

{variants}
## Training time

{timing}

## Missing, unfinished or failed runs

{missing}
{notes}"""
