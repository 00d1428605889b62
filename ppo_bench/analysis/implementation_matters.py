"""Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients" (arXiv 2005.12729), reproduced: the
report of ``experiment=implementation_matters`` (docs: "Implementation matters").

The runs are ``<folder>/<agent>/<env>/<setting>/seed<k>`` (each agent's conf/im file names its run root): PPO,
PPO-M (no code-level optimisations), PPO-NoClip, TRPO and TRPO+. Written into ``out_dir``:

- ``table2.md`` / ``table2.csv``: each agent's mean score over seeds with rliable's 95% bootstrap CI of the mean
  (their Table 2 gives bootstrap CIs too), AAI = max(|PPO − TRPO+|, |PPO-M − TRPO|) (the gap the algorithm
  explains, code-level optimisations held fixed) and ACLI = max(|PPO − PPO-M|, |TRPO+ − TRPO|) (the gap the
  optimisations explain, the algorithm held fixed), beside the paper's values; PPO-NoClip beside PPO and PPO-M
  (their Table 3).
- ``curves.png``: episode return over training, one panel per task, one line per agent (mean ± 1 std over seeds).
- ``trust_region.png``: their Figure 2 and 3: per task, the largest probability ratio max_t π_θ(a_t|s_t)/π_old
  over each iteration's batch after the update (the clipped objective's 1 + ε drawn) and the mean KL[π_old‖π_θ]
  (TRPO's δ drawn), for PPO, PPO-M, PPO-NoClip and TRPO, the median over seeds per iteration.

A run's score is theirs (``final_results.5_rewards`` of their src/run.py): the mean over the last 5 iterations
of each iteration's mean return of the episodes that ended in it. The Table-1 score of ppo-bench (the mean of
the last 100 episodes) is in the CSV beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppo_bench.analysis.runs import RETURN_TAG
from ppo_bench.analysis.scores import interval_estimates
from ppo_bench.analysis.sweep import SweepRun, load_sweep_runs, plot_sweep_curves
from ppo_bench.common.atomic import atomic_write_bytes, atomic_write_text

AGENTS = {"ppo": "PPO", "ppom": "PPO-M", "noclip": "PPO-NoClip", "trpo": "TRPO", "trpo_plus": "TRPO+"}
ENVS = ["Walker2d-v5", "Hopper-v5", "Humanoid-v5"]  # their tables' order
LAST_ITERATIONS = 5
TRUST_REGION_TAGS = ("stats/ratio_max", "stats/kl")

# Their Table 2 and 3 (v2 tasks, "≥ 80 agents per cell", mean reward [95% bootstrap CI]). NOT read from the paper's
# PDF here: transcribed from public notes on it, which agree with each other; check against arXiv 2005.12729
# before quoting. None: not in the table.
PAPER = {
    "Walker2d-v5": {"ppo": (3292, 3157, 3426), "ppom": (2735, 2602, 2866), "trpo": (2791, 2709, 2873),
                    "trpo_plus": (3050, 2976, 3126), "noclip": (2867, 2701, 3024)},
    "Hopper-v5": {"ppo": (2513, 2391, 2632), "ppom": (2142, 2008, 2279), "trpo": (2043, 1948, 2136),
                  "trpo_plus": (2466, 2381, 2549), "noclip": (2371, 2316, 2424)},
    "Humanoid-v5": {"ppo": (806, 785, 827), "ppom": (674, 656, 695), "trpo": (586, 576, 596),
                    "trpo_plus": (1030, 979, 1083), "noclip": (831, 798, 869)},
}
PAPER_SOURCE = ("the paper's values are transcribed from public notes on arXiv 2005.12729 (Tables 2 and 3; v2 tasks, "
                "≥ 80 agents per cell), not read from its PDF here: check them there before quoting")


def final_iterations_score(steps: np.ndarray, returns: np.ndarray, per_iteration: int,
                           iterations: int, last: int = LAST_ITERATIONS) -> float:
    """Their ``final_results.5_rewards``: the mean over the last ``last`` iterations of each iteration's mean
    return of the episodes that ended in it (an episode ending at step s ended in iteration ⌈s / steps⌉ − 1);
    iterations without an ending episode are left out; NaN without any."""
    it = (np.asarray(steps) - 1) // per_iteration
    means = [returns[it == i].mean() for i in range(iterations - last, iterations) if (it == i).any()]
    return float(np.mean(means)) if means else float("nan")


def agent_of(run: SweepRun, folder: Path) -> str | None:
    """The agent a run belongs to: the first folder below the experiment's folder (its conf/im run root)."""
    name = run.dir.relative_to(folder).parts[0]
    return name if name in AGENTS else None


@dataclass
class Cell:
    scores: np.ndarray  # one per finished seed
    last100: np.ndarray
    mean: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")


def build_cells(runs: list[SweepRun], folder: Path, reps: int = 2000, seed: int = 0) -> dict[tuple[str, str], Cell]:
    """(env, agent) → the finished runs' scores with the mean and its 95% bootstrap CI over seeds."""
    found: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for r in runs:
        agent = agent_of(r, folder)
        if agent is None or r.status != "finished":
            continue
        per_iteration = int(r.config["algo.num_steps"]) * int(r.config.get("env.num_envs", 1))
        ret = r.scalars[RETURN_TAG]
        iterations = r.global_step // per_iteration
        score = final_iterations_score(ret.steps, ret.values, per_iteration, iterations)
        scores, last100 = found.setdefault((r.env, agent), ([], []))
        scores.append(score)
        last100.append(r.score)
    cells = {k: Cell(np.array(s), np.array(l)) for k, (s, l) in found.items()}
    enough = {f"{e}/{a}": c.scores.reshape(-1, 1) for (e, a), c in cells.items() if len(c.scores) >= 2}
    ci = interval_estimates(enough, reps, seed)  # each cell its own bootstrap stream: order-free
    for (e, a), c in cells.items():
        c.mean = float(c.scores.mean())
        if f"{e}/{a}" in ci:
            c.lo, c.hi = ci[f"{e}/{a}"]["mean_lo"], ci[f"{e}/{a}"]["mean_hi"]
    return cells


def gaps(means: dict[str, float]) -> tuple[float, float]:
    """(AAI, ACLI) of one task from its agents' mean scores (their §5; NaN when an agent is missing)."""
    m = {a: means.get(a, float("nan")) for a in AGENTS}
    aai = max(abs(m["ppo"] - m["trpo_plus"]), abs(m["ppom"] - m["trpo"]))
    acli = max(abs(m["ppo"] - m["ppom"]), abs(m["trpo_plus"] - m["trpo"]))
    return aai, acli


def _cell_text(c: Cell | None) -> str:
    if c is None:
        return "—"
    ci = f" [{c.lo:.0f}, {c.hi:.0f}]" if np.isfinite(c.lo) else ""
    return f"{c.mean:.0f}{ci} (n={len(c.scores)})"


@dataclass
class JobTime:
    """What one job (an agent on a task: a population process of its seeds) cost, from its runs' status.json."""

    wall_s: float = 0.0  # its training wall time, summed over resumes (the runs share the process: their maximum)
    cpu_s: float = 0.0  # the process's CPU time over those iterations (``cpu_s``)
    cpu_since: int = 0  # > 0: CPU time counted only from this iteration on (runs resumed from older checkpoints)
    cpu_unrecorded: bool = False  # a run's status.json has no cpu_s (written by a version that did not record it)
    runs: int = 0


def job_times(runs: list[SweepRun]) -> dict[tuple[str, str], JobTime]:
    """(task, agent) → ``JobTime`` of the runs found (any status: a running job has cost what it has)."""
    out: dict[tuple[str, str], JobTime] = {}
    for r in runs:
        st = r.status_json
        j = out.setdefault((r.env, r.config["agent"]), JobTime())
        j.runs += 1
        j.wall_s = max(j.wall_s, float(st.get("wall_s") or 0.0))
        j.cpu_s = max(j.cpu_s, float(st.get("cpu_s") or 0.0))
        j.cpu_unrecorded |= "cpu_s" not in st
        j.cpu_since = max(j.cpu_since, int(st.get("cpu_s_since_iteration") or 0))
    return out


def render_cost(times: dict[tuple[str, str], JobTime]) -> list[str]:
    if not times:
        return ["No run has a status.json yet."]
    lines = ["| job | runs | training wall time (h) | CPU time (h) |", "|---|---|---|---|"]
    for (env, a), j in sorted(times.items(), key=lambda kv: (ENVS.index(kv[0][0]) if kv[0][0] in ENVS else 9,
                                                               list(AGENTS).index(kv[0][1]))):
        since = f" (from iteration {j.cpu_since})" if j.cpu_since else ""
        cpu = "not recorded" if j.cpu_unrecorded else f"{j.cpu_s / 3600:.2f}{since}"
        lines.append(f"| {AGENTS[a]} on {env} | {j.runs} | {j.wall_s / 3600:.2f} | {cpu} |")
    wall, cpu = sum(j.wall_s for j in times.values()), sum(j.cpu_s for j in times.values())
    partial = [f"{AGENTS[a]} on {e}" for (e, a), j in times.items() if j.cpu_since or j.cpu_unrecorded]
    lines += ["", f"In all **{wall / 3600:.2f} core-hours of training wall time** and **{cpu / 3600:.2f} CPU hours** "
              f"over {len(times)} job(s) (one process and one core each; the sweep's wall time is about the first "
              "divided by the parallel jobs, never below the longest job). From each run's `status.json`: `wall_s` "
              "and `cpu_s`, summed over resumes (a job's runs share its process: their maximum). Wall time counts "
              "what other work on the machine took from the job; CPU time does not. Process start-up and work lost "
              "to a kill between checkpoints are in neither."]
    if partial:
        lines += ["", f"CPU time is missing for part of {', '.join(sorted(partial))}: recorded only from the iteration "
                  "shown, or not at all (runs trained by a version that did not record it), so the CPU hours are a "
                  "lower bound."]
    return lines


def _paper_text(v: tuple[int, int, int] | None) -> str:
    return "—" if v is None else f"{v[0]} [{v[1]}, {v[2]}]"


def render_markdown(cells: dict[tuple[str, str], Cell], command: str, expected_seeds: int,
                    notes: list[str] = (), times: dict[tuple[str, str], JobTime] | None = None) -> str:
    envs = [e for e in ENVS if any(k[0] == e for k in cells)] or ENVS
    lines = ["# Implementation Matters (Engstrom et al. 2020), reproduced", "",
             f"Regenerate: `{command}`", "",
             "A run's score: the mean over its last 5 iterations of each iteration's mean episode return (their "
             "`final_results.5_rewards`); per cell the mean over seeds with rliable's 95% bootstrap CI of the mean "
             f"and the number of finished seeds n (of {expected_seeds}). Tasks are Gymnasium's v5, theirs gym's v2. "
             f"Note: {PAPER_SOURCE}.", "",
             "## Table 2: PPO and TRPO with and without the code-level optimisations", "",
             "| agent | " + " | ".join(f"{e} (here) | {e} (paper)" for e in envs) + " |",
             "|---|" + "---|---|" * len(envs)]
    for a in ("ppo", "ppom", "trpo", "trpo_plus"):
        lines.append(f"| {AGENTS[a]} | " + " | ".join(f"{_cell_text(cells.get((e, a)))} | {_paper_text(PAPER[e].get(a))}"
                                                       for e in envs) + " |")
    for i, name in enumerate(("AAI = max(\\|PPO − TRPO+\\|, \\|PPO-M − TRPO\\|)",
                              "ACLI = max(\\|PPO − PPO-M\\|, \\|TRPO+ − TRPO\\|)")):
        row = []
        for e in envs:
            here = gaps({a: c.mean for (env, a), c in cells.items() if env == e})[i]
            paper = gaps({a: v[0] for a, v in PAPER[e].items()})[i]
            row.append(f"{'—' if np.isnan(here) else f'{here:.0f}'} | {paper:.0f}")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "AAI: the gap the algorithm explains with the optimisations held fixed; ACLI: the gap the "
              "optimisations explain with the algorithm held fixed (their §5). The paper's AAI and ACLI are "
              "recomputed here from its rounded means.", "",
              "## Table 3: PPO without clipping", "",
              "| agent | " + " | ".join(f"{e} (here) | {e} (paper)" for e in envs) + " |",
              "|---|" + "---|---|" * len(envs)]
    for a in ("ppo", "ppom", "noclip"):
        lines.append(f"| {AGENTS[a]} | " + " | ".join(f"{_cell_text(cells.get((e, a)))} | {_paper_text(PAPER[e].get(a))}"
                                                       for e in envs) + " |")
    lines += ["", "## Readings", ""] + readings(cells, envs)
    if times is not None:
        lines += ["", "## Cost", ""] + render_cost(times)
    if notes:  # runs found twice, claimed twice or damaged (``ppo_bench.analysis.runs.count_once``)
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def _overlap(a: Cell, b: Cell) -> bool:
    return a.lo <= b.hi and b.lo <= a.hi


def readings(cells: dict[tuple[str, str], Cell], envs: list[str]) -> list[str]:
    """What the table says, from the CIs: a difference whose intervals overlap is called inside the noise."""
    out = []
    for e in envs:
        c = {a: cells.get((e, a)) for a in AGENTS}
        for x, y, what in (("ppo", "ppom", "code-level optimisations in PPO"),
                           ("trpo_plus", "trpo", "code-level optimisations in TRPO"),
                           ("ppo", "trpo_plus", "PPO against TRPO, both optimised"),
                           ("ppo", "noclip", "clipping, PPO's optimisations kept")):
            a, b = c[x], c[y]
            if a is None or b is None or not (np.isfinite(a.lo) and np.isfinite(b.lo)):
                continue
            if _overlap(a, b):
                verdict = f"inside the noise ({AGENTS[x]} {a.mean:.0f} vs {AGENTS[y]} {b.mean:.0f}; the 95% CIs overlap)"
            else:
                better = AGENTS[x] if a.mean > b.mean else AGENTS[y]
                verdict = f"{better} higher ({AGENTS[x]} {a.mean:.0f} vs {AGENTS[y]} {b.mean:.0f}; the 95% CIs apart)"
            out.append(f"- {e}, {what}: {verdict}.")
    return out or ["- Not enough finished seeds for intervals yet."]


def write_csv(cells: dict[tuple[str, str], Cell], path: Path) -> None:
    rows = ["env,agent,seeds,score_mean,mean_lo,mean_hi,last100_mean,paper_mean,paper_lo,paper_hi"]
    for (e, a), c in sorted(cells.items(), key=lambda kv: (ENVS.index(kv[0][0]) if kv[0][0] in ENVS else 9,
                                                            list(AGENTS).index(kv[0][1]))):
        p = PAPER.get(e, {}).get(a) or ("", "", "")
        rows.append(f"{e},{a},{len(c.scores)},{c.mean:.6g},{c.lo:.6g},{c.hi:.6g},{c.last100.mean():.6g},"
                    f"{p[0]},{p[1]},{p[2]}")
    atomic_write_text(path, "\n".join(rows) + "\n")


def plot_trust_region(runs: list[SweepRun], folder: Path, path: Path) -> None:
    """Their Figures 2-3: per task, max ratio and mean KL per iteration (median over seeds) for PPO, PPO-M,
    PPO-NoClip and TRPO."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = [e for e in ENVS if any(r.env == e for r in runs)]
    fig, axes = plt.subplots(2, max(len(envs), 1), figsize=(4.5 * max(len(envs), 1), 6.5), squeeze=False)
    for j, env in enumerate(envs):
        for a in ("ppo", "ppom", "noclip", "trpo"):
            own = [r for r in runs if r.env == env and agent_of(r, folder) == a]
            for i, tag in enumerate(TRUST_REGION_TAGS):
                series = [r.scalars.get(tag) for r in own if r.scalars.get(tag) is not None and len(r.scalars[tag].steps)]
                if not series:
                    continue
                n = min(len(s.values) for s in series)
                median = np.median(np.stack([s.values[:n] for s in series]), axis=0)
                axes[i, j].plot(series[0].steps[:n], median, label=AGENTS[a])
        eps = [r.config.get("objective.eps") for r in runs if r.env == env and agent_of(r, folder) == "ppo"]
        if eps and eps[0] is not None:
            axes[0, j].axhline(1 + float(eps[0]), color="grey", ls="--", lw=1, label="1 + ε")
        kl = [r.config.get("algo.max_kl") for r in runs if r.env == env and agent_of(r, folder) == "trpo"]
        if kl and kl[0] is not None:
            axes[1, j].axhline(float(kl[0]), color="grey", ls=":", lw=1, label="TRPO's δ")
        axes[0, j].set_title(env)
        axes[0, j].set_yscale("log")
        axes[0, j].set_ylabel("max ratio π_θ/π_old over the batch")
        axes[1, j].set_ylabel("mean KL[π_old‖π_θ]")
        axes[1, j].set_xlabel("environment steps")
        axes[0, j].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def implementation_matters_report(folder: str | Path, out_dir: str | Path, command: str, reps: int = 2000,
                                  seed: int = 0, expected_seeds: int = 10) -> list[Path]:
    """Write table2.md, table2.csv, curves.png and trust_region.png into out_dir; returns the files written."""
    folder, out = Path(folder), Path(out_dir)
    runs, notes = load_sweep_runs(folder, list(TRUST_REGION_TAGS))  # each run once; a damaged one named, not scored
    runs = [r for r in runs if agent_of(r, folder) is not None]
    if not runs:
        raise FileNotFoundError(f"no runs of experiment=implementation_matters (<agent>/<env>/<setting>/seed<k>) "
                                f"under {folder}")
    for r in runs:
        r.config["agent"] = agent_of(r, folder)
    cells = build_cells(runs, folder, reps, seed)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "table2.md", out / "table2.csv", out / "curves.png", out / "trust_region.png"]
    atomic_write_text(files[0], render_markdown(cells, command, expected_seeds, notes, job_times(runs)))
    write_csv(cells, files[1])
    plot_sweep_curves(runs, ["agent"], [RETURN_TAG], files[2], labels={(a,): n for a, n in AGENTS.items()}, columns=3)
    plot_trust_region(runs, folder, files[3])
    return files
