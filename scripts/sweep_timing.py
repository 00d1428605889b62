#!/usr/bin/env python
"""How long will the Table 1 sweep take? Measure it, one population per environment, then project.

For each environment of ``experiment=table1`` this trains the real 33-run population (11 settings ×
3 seeds, paper settings) for a few iterations of N·T = 2048 steps, reads the engine's own
``perf/sps`` (the population's environment steps per second over one whole iteration: rollout and
update) from the event files, and projects the 1M-step job: startup + ceil(1e6 / 2048) = 489
iterations at the median post-first iteration time. The 7 jobs are then list-scheduled, in the sweep's
order, onto C parallel workers (what joblib does with n_jobs = C) to give the sweep's wall time.
``--reproject`` redoes only that last step from the measurements already in the JSON.

On a busy machine a process gets less than a core; the child processes' CPU time / wall time says
how much it got, and the "per dedicated core" figures divide that share out.

    python scripts/table1_timing.py                      # ≈ 7 × 1–2 min of one core; writes results/table1_timing.json
    python scripts/table1_timing.py --envs hopper --iterations 2 --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TABLE1_STEPS = 1_000_000


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def makespan(jobs_s: list[float], workers: int) -> float:
    """List scheduling in the given order: each job goes to the worker that frees up first."""
    free = [0.0] * workers  # a heap of the times the workers become free
    for s in jobs_s:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def measure(preset: str, iterations: int, root: Path) -> dict:
    from ppo_bench.analysis.runs import read_scalar

    cmd = [sys.executable, "-m", "ppo_bench", "experiment=table1", "hydra.mode=RUN", f"env={preset}",
           f"ppo.total_timesteps={iterations * 2048}", f"run_root={root / preset}",
           f"hydra.run.dir={root / 'hydra' / preset}", "resume=false", "progress=never"]
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "CI": "1"})
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    event_files = sorted((root / preset).glob("*/*/seed0/events.out.tfevents.*"))
    _, sps = read_scalar(event_files[0], "perf/sps")
    runs = len(list((root / preset).glob("*/*/seed*")))
    iter_s = runs * 2048 / sps  # the population's seconds per iteration
    steady = float(np.median(iter_s[1:])) if len(iter_s) > 1 else float(iter_s[0])
    startup = max(wall - float(iter_s.sum()), 0.0)
    n_iter = math.ceil(TABLE1_STEPS / 2048)
    share = min(cpu / wall, 1.0)
    return {"env_preset": preset, "runs": runs, "iterations": len(iter_s), "iteration_s": [round(float(x), 2) for x in iter_s],
            "population_sps": round(runs * 2048 / steady, 1), "startup_s": round(startup, 1),
            "process_wall_s": round(wall, 1), "process_cpu_s": round(cpu, 1), "cpu_share": round(share, 3),
            "projected_job_s": round(startup + n_iter * steady, 1),
            "projected_job_s_dedicated_core": round((startup + n_iter * steady) * share, 1)}


def sweep_projection(rows: list[dict], cores: list[int]) -> dict:
    """The sweep's wall time on C workers, jobs dispatched in the order experiment=table1 lists them."""
    from ppo_bench.analysis.runs import experiment_env_presets

    by_preset = {r["env_preset"]: r for r in rows}
    order = [p for p in experiment_env_presets("table1") if p in by_preset]
    jobs = [by_preset[p]["projected_job_s"] for p in order]
    dedicated = [by_preset[p]["projected_job_s_dedicated_core"] for p in order]
    return {"job_order": order, "total_cpu_h": round(sum(dedicated) / 3600, 2),
            "sweep_by_cores": {str(c): {"wall_h": round(makespan(jobs, c) / 3600, 2),
                                        "wall_h_dedicated_cores": round(makespan(dedicated, c) / 3600, 2)}
                               for c in cores}}


def main(argv: list[str] | None = None) -> None:
    from ppo_bench.analysis.runs import experiment_env_presets
    from ppo_bench.atomic import atomic_write_text
    from ppo_bench.machine import describe

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", help="conf/env presets (default: the 7 of experiment=table1)")
    ap.add_argument("--iterations", type=int, default=3, help="iterations of 2048 steps per population")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2, 3, 4, 7])
    ap.add_argument("--note", default="", help="free text stored with the figures (e.g. the engine's commit)")
    ap.add_argument("--reproject", action="store_true",
                    help="measure nothing: recompute the projection of --out's measurements (e.g. after the "
                         "sweep's job order changed)")
    ap.add_argument("--out", default=str(REPO / "results" / "table1_timing.json"))
    args = ap.parse_args(argv)
    if args.reproject:
        out = json.loads(Path(args.out).read_text())
        out.update(sweep_projection(out["per_env"], args.cores))
    else:
        presets = args.envs or experiment_env_presets("table1")
        load_before = os.getloadavg()
        rows = []
        with tempfile.TemporaryDirectory(prefix="table1_timing_") as tmp:
            for preset in presets:
                row = measure(preset, args.iterations, Path(tmp))
                rows.append(row)
                print(f"{preset:<26} {row['population_sps']:8.0f} steps/s ({row['runs']} runs)  "
                      f"iteration {row['iteration_s']} s  startup {row['startup_s']:.0f} s  "
                      f"cpu share {row['cpu_share']:.2f}  → 1M-step job {row['projected_job_s'] / 3600:.2f} h "
                      f"({row['projected_job_s_dedicated_core'] / 3600:.2f} h on a dedicated core)", flush=True)
        out = {"what": "Table 1 sweep wall-time projection (scripts/table1_timing.py)",
               "command": " ".join(["python", "scripts/table1_timing.py", *(argv if argv is not None else sys.argv[1:])]),
               "note": args.note,
               "machine": describe("torch", "gymnasium", "mujoco", "numpy"),
               "load_avg_before": [round(x, 2) for x in load_before],
               "load_avg_after": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M"),
               "per_env": rows, **sweep_projection(rows, args.cores)}
    atomic_write_text(Path(args.out), json.dumps(out, indent=2) + "\n")
    for c, v in out["sweep_by_cores"].items():
        print(f"{c} cores: {v['wall_h']:.1f} h as measured, {v['wall_h_dedicated_cores']:.1f} h on dedicated cores")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
