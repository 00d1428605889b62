"""Figure 3 of the PPO paper (§6.2): PPO against TRPO, vanilla PG, A2C, A2C + trust region and CEM.

``ppo-bench-report RUN_ROOT --experiment figure3`` groups the runs by ``algo.name`` and writes figure3.png (one
panel per task, one line per algorithm: mean over seeds with a ± 1 std band) and figure3.md (each run's score,
the mean return of its last 100 episodes, as mean ± std over seeds per task × algorithm, beside baselines' TRPO
numbers at 1M steps and the paper's Figure 3 read off by eye).
"""

from __future__ import annotations

import math
from pathlib import Path

from ppo_bench.analysis.runs import RETURN_TAG
from ppo_bench.analysis.sweep import build_sweep_table, load_sweep_runs, plot_sweep_curves
from ppo_bench.common.atomic import atomic_write_text

ALGORITHMS = ["ppo", "trpo", "vpg", "a2c", "a2c_trust_region", "cem"]
LABELS = {"ppo": "PPO (clip)", "trpo": "TRPO", "vpg": "Vanilla PG, adaptive", "a2c": "A2C",
          "a2c_trust_region": "A2C + Trust Region", "cem": "CEM"}
TASKS = ["HalfCheetah-v5", "Hopper-v5", "InvertedDoublePendulum-v5", "InvertedPendulum-v5", "Reacher-v5",
         "Swimmer-v5", "Walker2d-v5"]
# openai/baselines' TRPO at 1M steps (benchmarks_mujoco1M, gym v2 envs, 6 seeds)
BASELINES_TRPO = {"HalfCheetah-v5": 1290, "Hopper-v5": 1913, "InvertedDoublePendulum-v5": 6732,
                  "InvertedPendulum-v5": 905, "Reacher-v5": -4.8, "Swimmer-v5": 95, "Walker2d-v5": 2343}
# the PPO paper's Figure 3 read off by eye (approximate): PPO, TRPO, A2C, A2C + trust region
PAPER_BY_EYE = {
    "HalfCheetah-v5": {"ppo": 1800, "trpo": 0, "a2c": 1000, "a2c_trust_region": 930},
    "Hopper-v5": {"ppo": 2330, "trpo": 2100, "a2c": 900, "a2c_trust_region": 1220},
    "Walker2d-v5": {"ppo": 3460, "trpo": 1100, "a2c": 850, "a2c_trust_region": 700},
    "Swimmer-v5": {"ppo": 108, "trpo": 121, "a2c": 31, "a2c_trust_region": 36},
    "Reacher-v5": {"ppo": -7, "trpo": -115, "a2c": -24, "a2c_trust_region": -27},
    "InvertedPendulum-v5": {"ppo": 1000, "trpo": 1000, "a2c": 1000, "a2c_trust_region": 1000},
    "InvertedDoublePendulum-v5": {"ppo": 8000, "trpo": 200, "a2c": 7100, "a2c_trust_region": 8100},
}


def _num(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.1f}"


def _cell(table, env: str, algo: str):
    """The table's row of one task × algorithm, or None where it has none."""
    row = table[(table.env == env) & (table["algo.name"] == algo)]
    return None if row.empty else row.iloc[0]


def render_markdown(table, command: str, expected_seeds: int, notes: list[str] = ()) -> str:
    lines = ["# Figure 3: PPO against the algorithms of its day", "",
             f"Regenerate: `{command}`", "",
             "Score: the mean return of a run's last 100 episodes; mean ± std over seeds (n = finished seeds). "
             "Beside it: openai/baselines' TRPO at 1M steps (gym v2 envs, 6 seeds) and the paper's Figure 3 read off "
             "by eye (approximate; '·' where the paper's curve was not read).", ""]
    header = ["task", *[LABELS[a] for a in ALGORITHMS], "best here", "baselines TRPO", "paper by eye: PPO / TRPO / A2C / A2C+TR"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for env in TASKS:
        cells, best, best_mean = [], "–", -math.inf
        for a in ALGORITHMS:
            r = _cell(table, env, a)
            if r is None or not r["seeds"]:
                cells.append("missing")
                continue
            damaged = f", {int(r.damaged)} damaged" if r.get("damaged", 0) else ""
            cells.append(f"{_num(r.score_mean)} ± {_num(r.score_std)} (n={int(r.seeds)}{damaged})")
            if r.seeds == expected_seeds and r.score_mean > best_mean:
                best, best_mean = LABELS[a], r.score_mean
        paper = PAPER_BY_EYE.get(env, {})
        eye = " / ".join(str(paper.get(a, "·")) for a in ("ppo", "trpo", "a2c", "a2c_trust_region"))
        lines.append("| " + " | ".join([env, *cells, best, _num(float(BASELINES_TRPO[env])), eye]) + " |")
    lines += ["", "The paper's claim: PPO outperforms the other algorithms on almost all of the tasks. "
              "'best here' is the algorithm with the highest mean over all its seeds.", ""]
    lines += ranking(table, expected_seeds)
    if notes:  # runs found twice, claimed twice or damaged (``ppo_bench.analysis.runs.count_once``)
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def _order(scores: dict[str, float]) -> str:
    return " > ".join(f"{LABELS[a]} {_num(scores[a])}" for a in sorted(scores, key=scores.get, reverse=True))


def ranking(table, expected_seeds: int) -> list[str]:
    """Task by task: the algorithms ordered by mean score (those with all their seeds finished), PPO's place, and
    the order of the four algorithms the paper's figure was read for, here and in the paper; then the counts."""
    lines = ["## The ranking, task by task, against the paper's", ""]
    first_here = first_of_four = first_paper = done = 0
    for env in TASKS:
        means = {}
        for a in ALGORITHMS:
            r = _cell(table, env, a)
            if r is not None and r["seeds"] == expected_seeds:
                means[a] = float(r.score_mean)
        if "ppo" not in means or len(means) < 2:
            lines.append(f"- **{env}**: not compared ({len(means)} of {len(ALGORITHMS)} algorithms have all "
                         f"{expected_seeds} seeds finished, PPO {'among them' if 'ppo' in means else 'not'}).")
            continue
        done += 1
        place = sorted(means, key=means.get, reverse=True).index("ppo") + 1
        paper = PAPER_BY_EYE[env]
        four = {a: means[a] for a in paper if a in means}
        ppo_first_four = max(four, key=four.get) == "ppo"
        paper_first = paper["ppo"] >= max(paper.values())
        first_here += place == 1
        first_of_four += ppo_first_four
        first_paper += paper_first
        tied = [a for a in paper if paper[a] == paper["ppo"] and a != "ppo"]
        lines.append(f"- **{env}**: {_order(means)}; PPO {place} of {len(means)}. Among the paper's four: here "
                     f"PPO is {'first' if ppo_first_four else 'not first'}; in the paper by eye {_order(paper)}"
                     + (" (PPO tied for first)" if paper_first and tied else "") + ".")
    lines += ["", f"PPO is first here on {first_here} of {done} tasks compared (of all {len(ALGORITHMS)} algorithms) and "
              f"first among the paper's four on {first_of_four} of {done}; in the paper, read by eye, it is first or tied "
              f"for first on {first_paper} of those {done}."]
    return lines


def figure3_report(folder: str | Path, out_dir: str | Path, command: str, random_scores: dict[str, float],
                   reps: int = 2000, seed: int = 0, expected_seeds: int = 3) -> list[Path]:
    """Write figure3.png and figure3.md into out_dir from the runs under folder; returns the files written."""
    folder, out = Path(folder), Path(out_dir)
    runs, notes = load_sweep_runs(folder)  # each run counted once; a damaged one named, not scored
    runs = [r for r in runs if r.config.get("algo.name") in ALGORITHMS or r.status == "damaged"]
    if not runs:
        raise FileNotFoundError(f"no Figure-3 runs (config.yaml with algo.name) under {folder}")
    table = build_sweep_table(runs, ["algo.name"], random_scores, reps=reps, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "figure3.png", out / "figure3.md"]
    plot_sweep_curves(runs, ["algo.name"], [RETURN_TAG], files[0], labels={(a,): LABELS[a] for a in ALGORITHMS},
                      columns=4)  # the paper's figure: two rows of panels
    atomic_write_text(files[1], render_markdown(table, command, expected_seeds, notes))
    return files
