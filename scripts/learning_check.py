#!/usr/bin/env python
"""Learning check (issue 2): PPO-clip ε = 0.2 at paper settings, 1M steps, 3 seeds, HalfCheetah-v5 and Hopper-v5.

Each environment is one `ppo-bench` process training its 3 seeds as a population; the environments
run in parallel, one process per core. Runs checkpoint as they go: re-running this command resumes
unfinished runs and skips finished ones, then rewrites the report from the runs' status files.

    python scripts/learning_check.py                  # the full check (writes results/learning_check.md)
    python scripts/learning_check.py --steps 20000    # a quick smoke version (report to stdout only)
    python scripts/learning_check.py --root runs/table1 --report-only   # read the same runs of a Table-1 sweep
    python scripts/learning_check.py algo.anneal_lr=true --root runs/learning_check_annealed \
        --out results/learning_check_annealed.md      # a variant: extra ppo-bench overrides after the options

A population member trains exactly as it would alone, so the ε = 0.2 runs of `experiment=table1` (same
settings, same seeds) are this check's runs: `--report-only` reads them instead of training again.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ppo_bench.common.atomic import read_json

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
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: report the finished runs under --root (e.g. runs/table1)")
    ap.add_argument("--beside", action="append", default=[], metavar="LABEL=JSON",
                    help="an earlier check's .json shown as a column beside this one (repeatable)")
    ap.add_argument("overrides", nargs="*", help="extra ppo-bench overrides, e.g. algo.anneal_lr=true")
    args = ap.parse_args()
    out = args.out or ("results/learning_check.md" if args.steps == 1_000_000 else None)
    beside = {}
    for item in args.beside:
        label, _, path = item.partition("=")
        if not label or not Path(path).is_file():
            ap.error(f"--beside {item!r}: expected LABEL=PATH of an earlier learning_check .json")
        beside[label] = {r["env"]: r for r in json.loads(Path(path).read_text())}
    root = Path(args.root) if Path(args.root).is_absolute() else REPO / args.root

    t0 = time.time()
    procs = []
    for env in [] if args.report_only else args.envs:
        cmd = [sys.executable, "-m", "ppo_bench", f"env={PRESETS[env]}", "objective=clip", "objective.eps=0.2",
               f"population.seeds=[{args.seeds}]", f"total_timesteps={args.steps}", f"run_root={args.root}",
               f"hydra.run.dir={args.root}/hydra/{env}", "resume=auto", "progress=never", *args.overrides]
        print("+", " ".join(cmd), flush=True)
        procs.append(subprocess.Popen(cmd, cwd=REPO))
    codes = [p.wait() for p in procs]
    launch_wall = time.time() - t0

    rows, lines = [], []
    for env in args.envs:
        scores, walls = [], []
        for seed in args.seeds.split(","):
            status = root / env / "clip_eps0.2" / f"seed{seed}" / "status.json"
            st = read_json(status) or {"status": "missing"}
            if st["status"] == "finished" and st.get("global_step", args.steps) >= args.steps:
                scores.append(st["score_last100"])
                walls.append(st["wall_s"])
        mean = statistics.mean(scores) if scores else float("nan")
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        rows.append({"env": env, "seeds": len(scores), "scores": scores, "mean": mean, "std": std,
                     "train_wall_s": max(walls) if walls else None, "expected": EXPECTED[env],
                     "baselines_ppo2": BASELINES_PPO2[env], "passed": mean >= EXPECTED[env]})
    for r in rows:
        wall = f"{r['train_wall_s']:.0f}" if r["train_wall_s"] is not None else "—"
        earlier = "".join(f" {b[r['env']]['mean']:.1f} ± {b[r['env']]['std']:.1f} |" if r["env"] in b else " — |"
                          for b in beside.values())
        lines.append(f"| {r['env']} | {r['seeds']} | {r['mean']:.1f} ± {r['std']:.1f} | "
                     f"{', '.join(f'{s:.1f}' for s in r['scores'])} | {r['expected']:.0f} | {r['baselines_ppo2']} |"
                     f"{earlier} {'yes' if r['passed'] else 'no'} | {wall} |")
    head = "".join(f" {label} |" for label in beside)
    table = (f"| env | seeds | score (mean ± std over seeds) | per seed | expected ≥ | baselines ppo2 |{head} met | "
             "train wall s |\n|" + "---|" * (8 + len(beside)) + "\n" + "\n".join(lines))
    print(table)
    print(f"exit codes {codes}; this launch took {launch_wall:.0f} s" if codes else "reported without training")
    if out:
        import torch

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=REPO).stdout.strip()

        how = (f"The runs were read from `{args.root}` (trained there by another command, e.g. the Table-1 sweep, whose "
               "members train exactly as they would alone); nothing was trained by this command."
               if args.report_only else
               "Each env is one process training its 3 seeds as a population; the two envs ran in parallel on a "
               f"{platform.machine()} machine with {__import__('os').cpu_count()} cores (torch {torch.__version__}).")
        if args.overrides:
            how += f" Settings: the defaults of `conf/` with {' '.join(args.overrides)}."
        text = f"""# Learning check: PPO-clip ε = 0.2, paper settings, {args.steps:,} steps, seeds {args.seeds}

Reproduce (from the repository root, after `make demo` or `make test` has installed the package):

    .venv/bin/python {shlex.join(['scripts/learning_check.py', *sys.argv[1:]])}

{how}
Score = mean total reward of a run's last 100 episodes (paper §6.1), then mean ± sample std over seeds.
"train wall s" is the training wall time of the slowest seed's population process, summed over resumed sittings.
{''.join(f"Column {label!r}: an earlier check, `{path}`." for label, path in (i.split('=', 1) for i in args.beside))}
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
