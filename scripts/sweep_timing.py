#!/usr/bin/env python
"""How long will a sweep take? Measure each of its jobs for a few iterations, then project.

    python scripts/sweep_timing.py                            # experiment=table1 → results/table1_timing.json
    python scripts/sweep_timing.py --experiment figure3       # → results/figure3_timing.json
    python scripts/sweep_timing.py --experiment figure3 --envs hopper --algos ppo,a2c --out /tmp/t.json
    python scripts/sweep_timing.py --experiment figure3 --reproject   # redo only the projection (other --cores)
    python scripts/sweep_timing.py --experiment figure3 compile=false # ppo-bench overrides for every job

The jobs are the experiment's Hydra jobs in the order a multirun launches them (``experiment=table1``: one per
environment, each a 33-run population of 11 settings × 3 seeds; ``experiment=figure3``: one per environment ×
algorithm, each a population of 3 seeds). Each job trains its real population with the experiment's own
settings (compile, checkpoint_every, torch_threads) for at least --iterations iterations and at least
--min-steps steps of every run, so that A2C's 80-step iterations are timed over many. Every iteration logs
once per run; the wall-clock times of run 0's ``perf/sps`` events give the iteration's period, all of it
(collect, update, logging, checkpoints). A job of n = ceil(total_timesteps / (N·T)) iterations (Table 1's PPO:
489 of 2048 steps; Figure 3: TRPO and VPG 977 of 1024, A2C 12 500 of 80, CEM 50 of 20 000) projects to

    (launch → first iteration logged) + (n − 1) × mean period after the first + (last iteration → exit).

The jobs are then list-scheduled, in the sweep's order, onto C parallel workers (what joblib does with
n_jobs = C) to give the sweep's wall time, beside the lower bound max(total / C, longest job). Hydra's sweep is
a cartesian product, so its order is the order of its factors and of their values: the slowest-first order
of each factor (values by their total time, for each order of the factors) is projected too, and the best
printed ready to paste into the experiment's ``hydra.sweeper.params``.

On a busy machine a process gets less than a core; the child processes' CPU time / wall time says how much it
got, and the "per dedicated core" figures divide that share out.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def makespan(jobs_s: list[float], workers: int) -> float:
    """List scheduling in the given order: each job goes to the worker that frees up first."""
    free = [0.0] * workers  # a heap of the times the workers become free
    for s in jobs_s:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def job_name(job: dict[str, str]) -> str:
    return "_".join(job.values()) or "job"


def job_key(job: dict[str, str]) -> tuple:
    """A job whatever the order of its keys."""
    return tuple(sorted(job.items()))


def job_shape(experiment: str, job: dict[str, str], overrides: list[str]) -> dict:
    """What the job trains per run: steps per iteration (N·T) and total steps, from its composed config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ppo_bench.rl.engine.config import CONF_DIR, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}", *(f"{k}={v}" for k, v in job.items()),
                                           *overrides])
    per_iter = int(cfg.env.num_envs) * int(cfg.algo.num_steps)
    return {"steps_per_iteration": per_iter, "total_timesteps": int(cfg.total_timesteps)}


def iteration_times(run_dir: Path) -> list[float]:
    """Wall-clock times of the run's perf/sps events: one per iteration, logged at its end."""
    from ppo_bench.common.tblog import read_scalars

    found = read_scalars(run_dir, ["perf/sps"])
    return found["perf/sps"].wall_times.tolist() if "perf/sps" in found else []


def measure(experiment: str, job: dict[str, str], iterations: int, min_steps: int, root: Path,
            overrides: list[str]) -> dict:
    name = job_name(job)
    shape = job_shape(experiment, job, overrides)
    per_iter = shape["steps_per_iteration"]
    n_measured = max(iterations, math.ceil(min_steps / per_iter), 2)
    cmd = [sys.executable, "-m", "ppo_bench", f"experiment={experiment}", "hydra.mode=RUN",
           *(f"{k}={v}" for k, v in job.items()), f"total_timesteps={n_measured * per_iter}",
           f"run_root={root / name}", f"hydra.run.dir={root / 'hydra' / name}", "resume=false", "progress=never",
           *overrides]
    cpu0, t0 = children_cpu_s(), time.time()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "CI": "1"})
    t1 = time.time()
    wall, cpu = t1 - t0, children_cpu_s() - cpu0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    run_dirs = sorted((root / name).glob("*/*/seed*"))
    times = iteration_times(run_dirs[0])
    first, period, tail = times[0] - t0, (times[-1] - times[0]) / (len(times) - 1), t1 - times[-1]
    n_iter = math.ceil(shape["total_timesteps"] / per_iter)
    share = min(cpu / wall, 1.0)
    job_s = first + (n_iter - 1) * period + tail
    return {"job": job, "runs": len(run_dirs), "steps_per_iteration": per_iter, "iterations": len(times),
            "iteration_period_s": [round(b - a, 3) for a, b in zip([t0, *times[:-1]], times)],
            "mean_period_s": round(period, 4), "population_sps": round(len(run_dirs) * per_iter / period, 1),
            "first_iteration_s": round(first, 1), "exit_s": round(tail, 1), "projected_iterations": n_iter,
            "process_wall_s": round(wall, 1), "process_cpu_s": round(cpu, 1), "cpu_share": round(share, 3),
            "projected_job_s": round(job_s, 1), "projected_job_s_dedicated_core": round(job_s * share, 1)}


def slowest_first_orders(rows: list[dict]) -> list[dict[str, list[str]]]:
    """The orders Hydra's product can give that put the slow jobs first: for each order of the sweep's factors,
    each factor's values by their total projected time, largest first."""
    factors = list(rows[0]["job"])
    orders = []
    for keys in itertools.permutations(factors):
        order = {}
        for k in keys:
            total: dict[str, float] = {}
            for r in rows:
                total[r["job"][k]] = total.get(r["job"][k], 0.0) + r["projected_job_s_dedicated_core"]
            order[k] = sorted(total, key=total.get, reverse=True)
        orders.append(order)
    return orders


def product_jobs(order: dict[str, list[str]]) -> list[dict[str, str]]:
    """Hydra's launch order for params listed as in ``order`` (the last varying fastest)."""
    return [dict(zip(order, values)) for values in itertools.product(*order.values())]


def sweep_projection(rows: list[dict], jobs: list[dict[str, str]], cores: list[int]) -> dict:
    """The sweep's wall time on C workers, the jobs dispatched in the experiment's order, and in the best
    slowest-first order its factors allow."""
    by_job = {job_key(r["job"]): r for r in rows}
    order = [by_job[job_key(j)] for j in jobs if job_key(j) in by_job]
    measured = [r["projected_job_s"] for r in order]
    dedicated = [r["projected_job_s_dedicated_core"] for r in order]
    total = sum(dedicated)
    out = {"job_order": [job_name(r["job"]) for r in order], "total_cpu_h": round(total / 3600, 2),
           "sweep_by_cores": {str(c): {"wall_h": round(makespan(measured, c) / 3600, 2),
                                       "wall_h_dedicated_cores": round(makespan(dedicated, c) / 3600, 2),
                                       "lower_bound_h": round(max(total / c, max(dedicated)) / 3600, 2)}
                              for c in cores}}
    candidates = []
    for params in slowest_first_orders(rows):
        seq = [by_job[job_key(j)]["projected_job_s_dedicated_core"] for j in product_jobs(params)
               if job_key(j) in by_job]
        candidates.append({"params": {k: ",".join(v) for k, v in params.items()},
                           "wall_h_dedicated_cores": {str(c): round(makespan(seq, c) / 3600, 2) for c in cores}})
    out["slowest_first_orders"] = candidates
    return out


def rows_of(out: dict) -> list[dict]:
    """The measured jobs of a JSON this script wrote (one of the Table-1-only version: per_env rows)."""
    if "per_job" in out:
        return out["per_job"]
    return [{**r, "job": {"env": r["env_preset"]}} for r in out["per_env"]]


def main(argv: list[str] | None = None) -> None:
    from ppo_bench.analysis.runs import experiment_jobs
    from ppo_bench.common.atomic import atomic_write_text
    from ppo_bench.common.machine import describe

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="table1", help="conf/experiment/<name>.yaml (default table1)")
    ap.add_argument("--envs", nargs="+", help="only these conf/env presets (default: the experiment's)")
    ap.add_argument("--algos", help="only these algorithms, comma-separated (default: the experiment's)")
    ap.add_argument("--iterations", type=int, default=3, help="at least this many iterations per job (and 2)")
    ap.add_argument("--min-steps", type=int, default=4096,
                    help="and at least this many steps of every run (rounded up to whole iterations)")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2, 3, 4, 7])
    ap.add_argument("--note", default="", help="free text stored with the figures (e.g. the engine's commit)")
    ap.add_argument("--reproject", action="store_true",
                    help="measure nothing: recompute the projection of --out's measurements (e.g. after the "
                         "sweep's job order changed)")
    ap.add_argument("--out", help="default: results/<experiment>_timing.json")
    ap.add_argument("overrides", nargs="*", help="ppo-bench overrides for every job, e.g. compile=false")
    args = ap.parse_args(argv)

    def fail(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)

    if args.iterations < 1 or args.min_steps < 1 or min(args.cores) < 1:
        fail("--iterations, --min-steps and --cores must be at least 1")
    try:
        jobs = experiment_jobs(args.experiment)
    except FileNotFoundError as e:
        fail(str(e))
    out_path = Path(args.out or REPO / "results" / f"{args.experiment}_timing.json")
    if args.reproject:
        if not out_path.exists():
            fail(f"--reproject: {out_path} does not exist; measure first (without --reproject)")
        out = json.loads(out_path.read_text())
        out.update(sweep_projection(rows_of(out), jobs, args.cores))
    else:
        todo = jobs
        for key, wanted in (("env", args.envs), ("algo", args.algos.split(",") if args.algos else None)):
            if wanted is not None:
                known = list(dict.fromkeys(j.get(key) for j in jobs))
                unknown = [w for w in wanted if w not in known]
                if unknown:
                    fail(f"experiment={args.experiment} has no {key} {', '.join(unknown)}; its {key}s: "
                         f"{', '.join(str(k) for k in known)}")
                todo = [j for j in todo if j.get(key) in wanted]
        load_before = os.getloadavg()
        rows = []
        with tempfile.TemporaryDirectory(prefix="sweep_timing_") as tmp:
            for job in todo:
                row = measure(args.experiment, job, args.iterations, args.min_steps, Path(tmp), args.overrides)
                rows.append(row)
                print(f"{job_name(job):<34} {row['population_sps']:8.0f} steps/s ({row['runs']} runs, "
                      f"{row['iterations']} iterations of {row['steps_per_iteration']})  first {row['first_iteration_s']:.0f} s"
                      f"  cpu share {row['cpu_share']:.2f}  → job {row['projected_job_s'] / 3600:.2f} h "
                      f"({row['projected_job_s_dedicated_core'] / 3600:.2f} h on a dedicated core)", flush=True)
        out = {"what": f"experiment={args.experiment} sweep wall-time projection (scripts/sweep_timing.py)",
               "experiment": args.experiment,
               "command": " ".join(["python", "scripts/sweep_timing.py", *(argv if argv is not None else sys.argv[1:])]),
               "note": args.note, "overrides": args.overrides,
               "machine": describe("torch", "gymnasium", "mujoco", "numpy"),
               "load_avg_before": [round(x, 2) for x in load_before],
               "load_avg_after": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M"),
               "per_job": rows, **sweep_projection(rows, jobs, args.cores)}
    atomic_write_text(out_path, json.dumps(out, indent=2) + "\n")
    print(f"{out['total_cpu_h']:.2f} core-hours on dedicated cores")
    for c, v in out["sweep_by_cores"].items():
        print(f"{c} cores: {v['wall_h']:.2f} h as measured, {v['wall_h_dedicated_cores']:.2f} h on dedicated cores "
              f"(lower bound {v['lower_bound_h']:.2f} h)")
    for cand in out["slowest_first_orders"]:
        walls = ", ".join(f"{c} cores {h:.2f} h" for c, h in cand["wall_h_dedicated_cores"].items())
        print("slowest-first order " + "  ".join(f"{k}: {v}" for k, v in cand["params"].items()) + f"  → {walls}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
