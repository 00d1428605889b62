#!/usr/bin/env python
"""Learning check (issue 2): PPO-clip ε = 0.2 at paper settings, 1M steps, 3 seeds, HalfCheetah-v5 and Hopper-v5.

Each environment is one `ppo-bench` process training its 3 seeds as a population; the environments
run in parallel, one process per core. Runs checkpoint as they go: re-running this command resumes
unfinished runs and skips finished ones, then rewrites the report from the runs' status files.

    python scripts/learning_check.py                  # the full check (writes results/learning_check.md)
    python scripts/learning_check.py --steps 20000    # a quick smoke version (report to stdout only)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASELINES_PPO2 = {"HalfCheetah-v5": 1668.58, "Hopper-v5": 2316.16}  # openai/baselines ppo2, gym v2, 1M steps
EXPECTED = {"HalfCheetah-v5": 1500.0, "Hopper-v5": 2000.0}
PRESETS = {"HalfCheetah-v5": "halfcheetah", "Hopper-v5": "hopper"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=list(PRESETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--root", default="runs/learning_check")
    ap.add_argument("--out", default=None, help="report path (default: results/learning_check.md at 1M steps)")
    args = ap.parse_args()
    out = args.out or ("results/learning_check.md" if args.steps == 1_000_000 else None)

    t0 = time.time()
    procs = []
    for env in args.envs:
        cmd = [sys.executable, "-m", "ppo_bench", f"env={PRESETS[env]}", "objective=clip", "objective.eps=0.2",
               f"population.seeds=[{args.seeds}]", f"ppo.total_timesteps={args.steps}", f"run_root={args.root}",
               f"hydra.run.dir={args.root}/hydra/{env}", "resume=auto", "progress=never"]
        print("+", " ".join(cmd), flush=True)
        procs.append(subprocess.Popen(cmd, cwd=REPO))
    codes = [p.wait() for p in procs]
    launch_wall = time.time() - t0

    rows, lines = [], []
    for env in args.envs:
        scores, walls = [], []
        for seed in args.seeds.split(","):
            st = json.loads((REPO / args.root / env / "clip_eps0.2" / f"seed{seed}" / "status.json").read_text())
            if st["status"] == "finished":
                scores.append(st["score_last100"])
                walls.append(st["wall_s"])
        mean = statistics.mean(scores) if scores else float("nan")
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        rows.append({"env": env, "seeds": len(scores), "scores": scores, "mean": mean, "std": std,
                     "train_wall_s": max(walls) if walls else None, "expected": EXPECTED[env],
                     "baselines_ppo2": BASELINES_PPO2[env], "passed": mean >= EXPECTED[env]})
    for r in rows:
        lines.append(f"| {r['env']} | {r['seeds']} | {r['mean']:.1f} ± {r['std']:.1f} | "
                     f"{', '.join(f'{s:.1f}' for s in r['scores'])} | {r['expected']:.0f} | {r['baselines_ppo2']} | "
                     f"{'yes' if r['passed'] else 'no'} | {r['train_wall_s']:.0f} |")
    table = ("| env | seeds | score (mean ± std over seeds) | per seed | expected ≥ | baselines ppo2 | met | "
             "train wall s |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(lines))
    print(table)
    print(f"exit codes {codes}; this launch took {launch_wall:.0f} s")
    if out:
        import torch

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=REPO).stdout.strip()

        text = f"""# Learning check: PPO-clip ε = 0.2, paper settings, {args.steps:,} steps, seeds {args.seeds}

Reproduce (from the repository root, after `make demo` or `make test` has installed the package):

    .venv/bin/python scripts/learning_check.py

Each env is one process training its 3 seeds as a population; the two envs ran in
parallel on a {platform.machine()} machine with {__import__('os').cpu_count()} cores (torch {torch.__version__}).
Score = mean total reward of a run's last 100 episodes (paper §6.1), then mean ± sample std over seeds.
"train wall s" is the training wall time of the slowest seed's population process, summed over resumed sittings.
Report written at commit {commit}; runs that were interrupted continued from their checkpoints (`resume=auto`).
The config of each run is in `{args.root}/<env>/clip_eps0.2/seed<k>/config.yaml` (defaults of `conf/`).

{table}
"""
        (REPO / out).parent.mkdir(parents=True, exist_ok=True)
        (REPO / out).write_text(text)
        (REPO / out).with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
