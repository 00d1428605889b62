"""Three tuners side by side in one run on this machine: trials finished per hour and the best value each reaches in
the same wall time — ppo-bench-tune (a batch of trials as one population), rl-baselines3-zoo's ``train.py --optimize``
(SB3's PPO, a process whose threads each train a trial) and Hydra's Optuna sweeper with the joblib launcher (a
process per trial) — and rl-baselines3-zoo again searching ppo-bench's space instead of its own
(``rl-zoo3-paper-space``, scripts/zoo_paper_space.py: the rollout length, minibatch, epochs and network at the
paper's, so that its trials cost what ppo-bench's do).

Each gets the same environment, trial budget (environment steps per trial, one seed per trial), sampler (Optuna's
multivariate TPE after ``--startup-trials`` random trials), sampler seed, evaluations per trial and median pruner
where it prunes (Hydra's sweeper cannot: a job does not report while it trains), and the same wall time. Each runs
as a subprocess in a session of its own, killed with its children when the time is up; its trials are then read
from its Optuna storage (SQLite): *finished* = complete or pruned before the time was up; per hour = finished / wall
× 3600; the best value among the complete ones, and when it was reached. The values differ in kind:
ppo-bench-tune's and the sweeper's are the mean return of a run's last 100 training episodes (ppo-bench-tune's
normalised value is turned back into a return), rl-baselines3-zoo's the mean return of 5 deterministic evaluation
episodes. The spaces differ too: ppo-bench-tune and the sweeper search conf/tune/ppo.yaml (step size, ε, λ, γ,
entropy); rl-baselines3-zoo its own PPO space, which also samples the batch size, rollout length, epochs and network
(a trial's cost varies with them tenfold: the ``rl-zoo3-paper-space`` tool removes that difference).

On a quiet machine (nothing else running; the figures of a busy one measure nothing):

    pip install -e '.[tune,bench]' && pip install --no-deps hydra-optuna-sweeper
    python scripts/bench_tuning.py --env Hopper-v5 --budget 100000 --wall 1800 --jobs 2

writes results/bench/tuning_Hopper-v5.json (about 2 h: four tuners × 30 min). ``--tools`` runs some of them; with
``--add`` they are added to the JSON of an earlier run of the same settings (each tool's start is recorded).
``--smoke`` runs each for ``--wall`` seconds with tiny settings and writes into ``--workdir`` only: it proves the
script works, nothing more.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("ppo-bench-tune", "rl-zoo3", "hydra-optuna", "rl-zoo3-paper-space")
SAME = ("env", "budget_per_trial", "wall_s_each", "jobs", "batch", "evaluations", "startup_trials", "seed", "smoke")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Hopper-v5", help="a Gymnasium id (default Hopper-v5)")
    ap.add_argument("--budget", type=int, default=100_000, help="environment steps per trial (default 100000)")
    ap.add_argument("--wall", type=float, default=1800, help="seconds each tuner runs (default 1800)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel trials of rl-zoo3 and the sweeper (default 2)")
    ap.add_argument("--batch", type=int, default=16, help="ppo-bench-tune's trials per population (default 16)")
    ap.add_argument("--evaluations", type=int, default=10, help="evaluations per trial (default 10)")
    ap.add_argument("--startup-trials", type=int, default=10, help="random trials before TPE (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="the samplers' seed (default 0)")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"which, comma-separated (default {','.join(TOOLS)})")
    ap.add_argument("--workdir", default="runs/bench_tuning", help="the studies and their runs (default runs/bench_tuning)")
    ap.add_argument("--out", default=None, help="results JSON (default results/bench/tuning_<env>.json; with --smoke "
                                                "<workdir>/tuning_<env>_smoke.json)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings, to prove the script works")
    ap.add_argument("--add", action="store_true", help="keep the other tools of the results JSON (an earlier run of "
                                                       "the same settings) and add or replace these")
    return ap.parse_args(argv)


def commands(a: argparse.Namespace, work: Path) -> dict[str, tuple[list[str], str, str]]:
    """tool → (argv, Optuna storage URL, study name)."""
    py = sys.executable
    ours_extra = ["algo.num_steps=256", "algo.minibatch_size=64", "algo.epochs=2"] if a.smoke else []
    ours = [py, "-m", "ppo_bench.tune", str(work / "ppo-bench-tune"), f"env.id={a.env}", f"total_timesteps={a.budget}",
            "progress=never", *ours_extra, "--trials", "100000", "--batch", str(a.batch), "--evaluations",
            str(a.evaluations), "--startup-trials", str(a.startup_trials), "--seed", str(a.seed), "--pruner", "median"]
    zoo_conf = work / "rl-zoo3" / "hyperparams.yml"
    zoo_conf.parent.mkdir(parents=True, exist_ok=True)
    zoo_conf.write_text(f"{a.env}:\n  policy: 'MlpPolicy'\n  n_timesteps: {a.budget}\n  normalize: true\n")
    zoo = [py, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", a.env, "-n", str(a.budget), "--optimize",
           "--n-trials", "100000", "--n-jobs", str(a.jobs), "--sampler", "tpe", "--pruner", "median",
           "--n-startup-trials", str(a.startup_trials), "--n-evaluations", str(a.evaluations), "--seed", str(a.seed),
           "--storage", f"sqlite:///{work / 'rl-zoo3' / 'study.db'}", "--study-name", "zoo", "-f",
           str(work / "rl-zoo3" / "logs"), "--device", "cpu", "--no-optim-plots", "--conf-file", str(zoo_conf),
           "--num-threads", "1", "--verbose", "0"]
    zoo_same = [py, str(REPO / "scripts" / "zoo_paper_space.py"), *zoo[3:]]
    for flag, value in (("--storage", f"sqlite:///{work / 'rl-zoo3-paper-space' / 'study.db'}"),
                        ("-f", str(work / "rl-zoo3-paper-space" / "logs"))):
        zoo_same[zoo_same.index(flag) + 1] = value
    (work / "rl-zoo3-paper-space").mkdir(parents=True, exist_ok=True)
    hydra = [py, "-m", "ppo_bench", "-m", "tune=ppo", f"env.id={a.env}", f"total_timesteps={a.budget}", "progress=never",
             *ours_extra, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={a.jobs}", f"hydra.sweeper.n_jobs={a.jobs}",
             "hydra.sweeper.n_trials=100000", f"hydra.sweeper.storage=sqlite:///{work / 'hydra-optuna' / 'study.db'}",
             "hydra.sweeper.study_name=hydra", f"hydra.sweeper.sampler.seed={a.seed}",
             f"hydra.sweeper.sampler.n_startup_trials={a.startup_trials}", "hydra.sweeper.sampler.multivariate=true",
             f"hydra.sweep.dir={work / 'hydra-optuna' / 'multirun'}"]
    (work / "hydra-optuna").mkdir(parents=True, exist_ok=True)
    return {"ppo-bench-tune": (ours, f"sqlite:///{work / 'ppo-bench-tune' / 'study.db'}", "ppo-bench-tune"),
            "rl-zoo3": (zoo, f"sqlite:///{work / 'rl-zoo3' / 'study.db'}", "zoo"),
            "hydra-optuna": (hydra, f"sqlite:///{work / 'hydra-optuna' / 'study.db'}", "hydra"),
            "rl-zoo3-paper-space": (zoo_same, f"sqlite:///{work / 'rl-zoo3-paper-space' / 'study.db'}", "zoo")}


def run_for(argv: list[str], wall: float, log: Path) -> tuple[datetime.datetime, float, int | None]:
    """Run a tuner for ``wall`` seconds in a session of its own, then kill it and its children."""
    start = datetime.datetime.now()
    t0 = time.monotonic()
    with open(log, "w") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
                             env={**os.environ, "CI": "1", "OMP_NUM_THREADS": "1"})
        try:
            p.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return start, time.monotonic() - t0, p.returncode


def read_study(storage: str, name: str, start: datetime.datetime, wall: float, to_return=None) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return {"finished": 0, "per_hour": 0.0, "error": "no study (the tuner did not start one)"}
    end = start + datetime.timedelta(seconds=wall)
    in_time = [t for t in study.trials if t.datetime_complete is not None and t.datetime_complete <= end]
    states = [t.state.name for t in in_time]
    complete = sorted((t for t in in_time if t.state.name == "COMPLETE" and t.value is not None),
                      key=lambda t: t.datetime_complete)
    best, curve = None, []
    for t in complete:
        value = to_return(t.value) if to_return else t.value
        if best is None or value > best:
            best = value
            curve.append([round((t.datetime_complete - start).total_seconds(), 1), value])
    finished = states.count("COMPLETE") + states.count("PRUNED")
    return {"finished": finished, "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"), "per_hour": finished / wall * 3600, "best_return": best,
            "best_so_far": curve}


def main(argv=None) -> int:
    a = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from ppo_bench.common.machine import describe
    from ppo_bench.tune.tuner import normalisers

    if a.smoke:
        a.budget, a.evaluations, a.startup_trials, a.batch = min(a.budget, 2048), 2, 2, min(a.batch, 4)
    work = Path(a.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    tools = [t for t in a.tools.split(",") if t]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        print(f"error: --tools {','.join(sorted(unknown))}: not one of {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    norm = normalisers([a.env], {})[a.env]
    back = (lambda v: v) if norm.random is None else (lambda v: v * (norm.reference - norm.random) + norm.random)
    cmds = commands(a, work)
    load_before = os.getloadavg()
    out: dict = {"env": a.env, "budget_per_trial": a.budget, "wall_s_each": a.wall, "jobs": a.jobs, "batch": a.batch,
                 "evaluations": a.evaluations, "startup_trials": a.startup_trials, "seed": a.seed, "smoke": a.smoke,
                 "machine": describe("torch", "gymnasium", "mujoco", "numpy", "optuna", "stable_baselines3", "rl_zoo3"),
                 "command": "python scripts/bench_tuning.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
                 "values": {"ppo-bench-tune": "mean return of the last 100 training episodes (its normalised value "
                                              f"turned back: {norm.describe()})",
                            "hydra-optuna": "mean return of the last 100 training episodes",
                            "rl-zoo3": "mean return of 5 deterministic evaluation episodes",
                            "rl-zoo3-paper-space": "mean return of 5 deterministic evaluation episodes"},
                 "tools": {}}
    path = Path(a.out) if a.out else (work / f"tuning_{a.env}_smoke.json" if a.smoke
                                      else REPO / "results" / "bench" / f"tuning_{a.env}.json")
    if a.add:  # the tools of an earlier run of the same settings on this machine, kept beside the new ones
        if not path.is_file():
            print(f"error: --add: {path} does not exist (run the other tools first, or leave out --add)", file=sys.stderr)
            return 2
        earlier = json.loads(path.read_text())
        differ = [k for k in SAME if earlier.get(k) != out[k]]
        if differ:
            print(f"error: --add: {path} was measured with other settings ({', '.join(differ)})", file=sys.stderr)
            return 2
        out["tools"] = {t: r for t, r in earlier["tools"].items() if t not in tools}
        out["command"] = f"{earlier['command']}; then {out['command']}"
        load_before = (earlier["load_average_before_after"][0],)  # before the first of the tools
    for tool in tools:
        argv_t, storage, name = cmds[tool]
        print(f"{tool}: {a.wall:.0f} s ...", flush=True)
        start, took, rc = run_for(argv_t, a.wall, work / f"{tool}.log")
        res = read_study(storage, name, start, a.wall, back if tool == "ppo-bench-tune" else None)
        res.update({"command": " ".join(shlex.quote(x) for x in argv_t), "exit_code": rc, "ran_s": round(took, 1),
                    "started": start.isoformat(timespec="seconds")})
        out["tools"][tool] = res
        print(f"  {res['finished']} trials finished ({res.get('pruned', 0)} pruned): {res['per_hour']:.1f}/h; "
              f"best {res.get('best_return')}", flush=True)
    ours = out["tools"].get("ppo-bench-tune", {}).get("per_hour")
    out["ratios"] = {f"ppo-bench-tune_over_{t}": (ours / r["per_hour"] if ours and r["per_hour"] else None)
                     for t, r in out["tools"].items() if t != "ppo-bench-tune"}
    out["load_average_before_after"] = [load_before[0], os.getloadavg()[0]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
