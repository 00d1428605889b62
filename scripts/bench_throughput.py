#!/usr/bin/env python
"""Throughput benchmark (README, "Throughput"): every figure measured side by side in one run.

    python scripts/bench_throughput.py                       # HalfCheetah-v5
    python scripts/bench_throughput.py --env Hopper-v5
    python scripts/bench_throughput.py --repeats 3           # each figure the median of 3 interleaved rounds
    python scripts/bench_throughput.py --baseline main~3     # also the code of another commit, side by side
    python scripts/bench_throughput.py --algos ppo,trpo,vpg,a2c,a2c_trust_region,cem   # Figure 3's algorithms too
    python scripts/bench_throughput.py --baseline main~3 --count-work   # and the work per iteration, counted
    make bench                                               # installs the bench extra, both envs, --repeats 3

For one environment it measures, each in a fresh process pinned to one torch thread:
  physics_sps     raw MuJoCo: a plain mj_step(model, data, nstep=frame_skip) loop, no policy
  single_sps      ppo-bench training steps/s of one run (clip ε=0.2) at paper settings
  population_sps  aggregate training steps/s of the Table-1 population: 11 settings × 3 seeds = 33 runs
  sb3_sps         Stable-Baselines3 PPO, same hyperparameters and network, same env, one thread
  pair_sps        two population processes at once through joblib (2 cores): aggregate steps/s
  *_compiled_sps  single and population again with compile=true (torch.compile of the update's
                  minibatch gradient as one graph; skipped by --no-compile or without a C++ compiler)
  work_*          with --count-work: the work one eager iteration does, per phase, counted instead of timed —
                  the torch operators dispatched (aten ops) and the Python function calls — for the single run
                  and the population (and at --baseline's revision beside them). Counts do not move with the
                  host's load, so a speed change between two revisions can be told from noise by them (but for the
                  log phase's Python calls: two runs of the same code differed there by up to 8%)
  algo_<name>_sps with --algos: aggregate training steps/s of a 33-run population (33 seeds) of each named
                  algorithm (conf/algo/: its own actors and rollout length; PPO as in Figure 3, clip ε=0.2),
                  with compile=true as experiment=figure3 runs them (eager under --no-compile), timed over
                  --algo-steps steps of every run (whole iterations: A2C's are 80 steps, CEM's 20 000)
and the peak resident memory of each process. Training rates are timed over whole iterations
(collect + update) after one warm-up iteration, and each iteration's seconds split into its phases (rollout,
acting diagnostics, update, logging, the rest), printed per iteration. With --repeats k every measurement is taken k times,
the rounds interleaved (all measurements once, then again), and each figure is the median of its k
(all k kept in the JSON): the hosts are shared, and a slow spell during one measurement would
otherwise skew its ratios. With --baseline REV the single and population rates (compiled too) are also
measured with the code of git revision REV, checked out into a temporary worktree whose ppo_bench and
configs this script's own workers import (both sides timed by the same code), interleaved with the current code's, and the ratios current/baseline printed: how a
change is shown to keep (or gain) speed. Results go to results/bench/throughput_<env>.json
with the machine's description; the load average is recorded because these machines are shared.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    # not ppo_bench.common.machine.peak_rss_mb: the workers also run on --baseline's older tree, which may not have it
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def physics_worker(env_id: str, seconds: float) -> dict:
    import gymnasium as gym
    import mujoco

    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    u = env.unwrapped
    model, data, nstep = u.model, u.data, u.frame_skip
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(500):
            mujoco.mj_step(model, data, nstep=nstep)
        n += 500
    return {"sps": n / (time.perf_counter() - t0), "frame_skip": nstep}


def make_trainer(env_id: str, overrides: list[str], compiled: bool):
    """A PopulationTrainer of the population the overrides name, on one torch thread, logging into a temporary
    folder and never checkpointing: what every timed or counted worker trains."""
    import torch
    from hydra import compose, initialize_config_dir

    from ppo_bench.rl.launch import population_specs
    from ppo_bench.rl.engine.config import CONF_DIR, register_configs
    from ppo_bench.rl.engine.trainer import PopulationTrainer

    torch.set_num_threads(1)
    register_configs()
    root = tempfile.mkdtemp(prefix="ppo_bench_bench_")
    overrides = [f"env.id={env_id}", f"run_root={root}", "progress=never", "checkpoint_every=1000000",
                 f"compile={compiled}", *overrides]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return PopulationTrainer(cfg, population_specs(cfg))


def trained_rate(env_id: str, overrides: list[str], compiled: bool, iters: int | None = None,
                 steps_per_run: int | None = None) -> dict:
    """ppo-bench's training steps/s of the population the overrides name, timed over whole iterations (collect +
    update) after one warm-up iteration: ``iters`` of them, or as many as ``steps_per_run`` steps of each run take
    (at least one)."""
    trainer = make_trainer(env_id, overrides, compiled)
    if iters is None:
        iters = max(1, -(-steps_per_run // (trainer.N * trainer.T)))
    phase_s = time_phases(trainer)
    trainer.start(resume=False)
    t0 = time.perf_counter()
    trainer.iterate()  # warm-up (and, compiled, the compilation)
    warmup_s = time.perf_counter() - t0
    phase_s.clear()
    steps, t0 = 0, time.perf_counter()
    for _ in range(iters):
        steps += trainer.iterate()[0]
    elapsed = time.perf_counter() - t0
    trainer.close()
    phase_s = {k: v / iters for k, v in phase_s.items()}
    phase_s["other"] = elapsed / iters - sum(phase_s.values())  # checkpoints, the iteration's own bookkeeping
    return {"sps": steps / elapsed, "runs": trainer.R, "steps": steps, "seconds": elapsed, "iterations": iters,
            "steps_per_iteration": trainer.R * trainer.N * trainer.T, "peak_rss_mb": peak_rss_mb(),
            "vector_env": type(trainer.envs).__name__, "compiled": compiled, "warmup_iteration_s": warmup_s,
            "phase_s_per_iteration": phase_s}


PHASES = ("collect", "acting_diagnostics", "update", "log")  # what PopulationTrainer.iterate calls, where it has them


def wrap_phases(trainer, measure) -> None:
    """Route each of the trainer's per-iteration methods (those of PHASES it has: older code lacks some) through
    ``measure(name, method, *args, **kwargs)``, which calls the method and returns its result."""
    for name in PHASES:
        method = getattr(trainer, name, None)
        if method is not None:
            setattr(trainer, name, functools.partial(measure, name, method))


def time_phases(trainer) -> dict[str, float]:
    """Add each phase's seconds to the returned dict, so that an iteration's time splits into rollout,
    diagnostics, update and logging."""
    seconds: dict[str, float] = {}

    def timed(name, method, *args, **kwargs):
        t = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t

    wrap_phases(trainer, timed)
    return seconds


def count_work(trainer) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Count, per call of each phase (``wrap_phases``), what the returned switch names: "aten_ops", the torch operators dispatched (a TorchDispatchMode sees each aten op), or
    "python_calls", the Python function calls (cProfile). One at a time: the operator counter runs Python code
    of its own for every operator. Each phase's count of its latest call is kept in the returned dict."""
    import cProfile
    import pstats

    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            return func(*args, **(kwargs or {}))

    counts: dict[str, dict[str, int]] = {}
    switch = ["python_calls"]

    def counted(name, method, *args, **kwargs):
        if switch[0] == "aten_ops":
            with OpCounter() as ops:
                try:
                    return method(*args, **kwargs)
                finally:
                    counts.setdefault(name, {})["aten_ops"] = ops.ops
        profile = cProfile.Profile()
        profile.enable()
        try:
            return method(*args, **kwargs)
        finally:
            profile.disable()
            counts.setdefault(name, {})["python_calls"] = pstats.Stats(profile).total_calls

    wrap_phases(trainer, counted)
    return counts, switch


def work_worker(env_id: str, population: bool) -> dict:
    """The work of an eager iteration of the single run or the Table-1 population, per phase: after a warm-up
    iteration and one that primes what the counters load lazily, the Python calls of the third iteration and the
    torch operators of the fourth."""
    trainer = make_trainer(env_id, ppo_overrides(population), compiled=False)
    trainer.start(resume=False)
    trainer.iterate()
    counts, switch = count_work(trainer)
    for what in ("aten_ops", "python_calls", "python_calls", "aten_ops"):  # prime both, then count
        switch[0] = what
        trainer.iterate()
    trainer.close()
    total = {k: sum(c[k] for c in counts.values()) for k in ("aten_ops", "python_calls")}
    return {"runs": trainer.R, "phases": counts, "total": total}


def ppo_overrides(population: bool) -> list[str]:
    """The population is Table 1's (its 11 settings × 3 seeds, from the experiment config itself); the single run
    is clip ε = 0.2."""
    return ["experiment=table1"] if population else ["objective=clip", "objective.eps=0.2"]


def ppo_worker(env_id: str, population: bool, iters: int, compiled: bool = False) -> dict:
    return trained_rate(env_id, ppo_overrides(population), compiled, iters=iters)


ALGO_RUNS = 33  # as many runs as Table 1's population, so that every algorithm's rate compares with it


def algo_worker(env_id: str, algo: str, steps_per_run: int, compiled: bool = False) -> dict:
    """A 33-run population of one algorithm (conf/algo/, its own actors and rollout length), 33 seeds; PPO is
    Figure 3's (clip, ε = 0.2)."""
    overrides = [f"algo={algo}", f"population.seeds=[{','.join(str(k) for k in range(ALGO_RUNS))}]"]
    if algo == "ppo":
        overrides += ["objective=clip", "objective.eps=0.2"]
    return trained_rate(env_id, overrides, compiled, steps_per_run=steps_per_run)


def sb3_worker(env_id: str, iters: int) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(1)
    # ppo-bench's defaults: observation normalisation clipped at 5, no reward scaling
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)]), norm_obs=True, norm_reward=False, clip_obs=5.0)
    model = PPO("MlpPolicy", venv, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99,
                gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=1.0, max_grad_norm=1e10,
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                                   log_std_init=0.0, ortho_init=True),
                device="cpu", seed=0, verbose=0)
    model.learn(2048)  # warm-up
    t0 = time.perf_counter()
    model.learn(iters * 2048, reset_num_timesteps=False)
    elapsed = time.perf_counter() - t0
    import stable_baselines3

    return {"sps": iters * 2048 / elapsed, "peak_rss_mb": peak_rss_mb(), "version": stable_baselines3.__version__}


def in_subprocess(*args: str, tree: Path = REPO) -> dict:
    """Run one worker of this script in a fresh interpreter (its own memory peak, no shared state), with the
    ppo_bench package and configs of ``tree`` (this checkout, or the baseline's worktree): both sides are timed by
    the same worker code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", *args],
                         capture_output=True, text=True, cwd=tree, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pair_worker(env: str, population_iters: int) -> dict:
    """Two population processes at once through joblib (one per core): their aggregate steps/s."""
    from joblib import Parallel, delayed

    pair = Parallel(n_jobs=2)(delayed(in_subprocess)("ppo", env, "population", str(population_iters))
                              for _ in range(2))
    return {"sps_each": [p["sps"] for p in pair], "sps": sum(p["sps"] for p in pair),
            "peak_rss_mb": [p["peak_rss_mb"] for p in pair]}


def median_result(results: list[dict]) -> dict:
    """The result whose steps/s is the median of the repeats (the lower middle one for an even count),
    with every repeat's steps/s beside it."""
    ranked = sorted(results, key=lambda r: r["sps"])
    out = dict(ranked[(len(ranked) - 1) // 2])
    if len(results) > 1:
        out["sps_repeats"] = [r["sps"] for r in results]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--single-iters", type=int, default=4, help="timed iterations of the single run")
    ap.add_argument("--population-iters", type=int, default=2, help="timed iterations of the 33-run population")
    ap.add_argument("--physics-seconds", type=float, default=5.0)
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument("--skip-pair", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile=true measurements")
    ap.add_argument("--repeats", type=int, default=1,
                    help="take every measurement this many times (interleaved rounds) and keep the median")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also measure single and population with the code of this git revision, side by side")
    ap.add_argument("--algos", default=None, metavar="A,B,...",
                    help="also a 33-run population of each of these algorithms (conf/algo/), e.g. "
                         "ppo,trpo,vpg,a2c,a2c_trust_region,cem")
    ap.add_argument("--algo-steps", type=int, default=4096,
                    help="timed steps of every run of an --algos population (rounded up to whole iterations)")
    ap.add_argument("--count-work", action="store_true",
                    help="also count the operators and Python calls of one eager iteration, per phase (not timed)")
    ap.add_argument("--out", default=None, help="default: results/bench/throughput_<env>.json")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    def fail(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)

    if args.repeats < 1:
        fail(f"--repeats must be at least 1, got {args.repeats}")
    if args.algo_steps < 1:
        fail(f"--algo-steps must be at least 1, got {args.algo_steps}")
    algos = [a for a in (args.algos or "").split(",") if a]
    if args.algos is not None:
        from ppo_bench.rl.algorithms import ALGORITHMS

        unknown = [a for a in algos if a not in ALGORITHMS]
        if unknown or not algos:
            fail(f"--algos {args.algos!r}: " + (f"unknown {', '.join(map(repr, unknown))}" if unknown else "empty")
                 + f"; allowed: {','.join(ALGORITHMS)}")

    if args.worker:
        kind, env_id, *rest = args.worker
        if kind == "physics":
            res = physics_worker(env_id, float(rest[0]))
        elif kind == "ppo":
            res = ppo_worker(env_id, rest[0] == "population", int(rest[1]), rest[2:] == ["compiled"])
        elif kind == "work":
            res = work_worker(env_id, rest[0] == "population")
        elif kind == "algo":
            res = algo_worker(env_id, rest[0], int(rest[1]), rest[2:] == ["compiled"])
        else:
            res = sb3_worker(env_id, int(rest[0]))
        print(json.dumps(res))
        return

    env = args.env
    load_before = os.getloadavg()
    t_start = time.time()
    from ppo_bench.rl.engine.config import missing_cpp_compiler
    from ppo_bench.common.machine import describe

    res: dict = {"env": env, "machine": describe("torch", "gymnasium", "mujoco", "numpy"),
                 "command": "python scripts/bench_throughput.py " + " ".join(sys.argv[1:])}
    compile_ok = not args.no_compile and missing_cpp_compiler() is None
    plan = [("physics", ("physics", env, str(args.physics_seconds))),
            ("single", ("ppo", env, "single", str(args.single_iters))),
            ("population", ("ppo", env, "population", str(args.population_iters)))]
    if compile_ok:
        plan += [("single_compiled", ("ppo", env, "single", str(args.single_iters), "compiled")),
                 ("population_compiled", ("ppo", env, "population", str(args.population_iters), "compiled"))]
    baseline_tree = None
    if args.baseline:
        baseline_tree = Path(tempfile.mkdtemp(prefix="ppo_bench_baseline_")) / "tree"
        added = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline_tree), args.baseline],
                               capture_output=True, text=True)
        if added.returncode != 0:  # not a git checkout, or no such revision: git's own last line says which
            why = (added.stderr.strip().splitlines() or [f"git exited {added.returncode}"])[-1]
            print(f"error: --baseline {args.baseline}: {why}", file=sys.stderr)
            sys.exit(2)
        res["baseline"] = {"rev": args.baseline, "commit": subprocess.run(
            ["git", "-C", str(baseline_tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()}
        plan += [(f"{name}_baseline", (*worker, "@baseline")) for name, worker in plan if name != "physics"]
    plan += [(f"algo_{a}", ("algo", env, a, str(args.algo_steps), *(["compiled"] if compile_ok else [])))
             for a in algos]
    if not args.skip_sb3:
        plan.append(("sb3", ("sb3", env, str(args.single_iters))))
    if not args.skip_pair:
        plan.append(("pair", None))
    counted = [] if not args.count_work else [(f"work_{kind}", ("work", env, kind)) for kind in ("single", "population")]
    if args.count_work and baseline_tree is not None:
        counted += [(f"{name}_baseline", (*worker, "@baseline")) for name, worker in counted]
    def run_worker(worker: tuple[str, ...]) -> dict:
        """A worker of the plan, with the baseline's code where it ends in "@baseline"."""
        if worker[-1] == "@baseline":
            return in_subprocess(*worker[:-1], tree=baseline_tree)
        return in_subprocess(*worker)

    rounds: dict[str, list[dict]] = {name: [] for name, _ in plan}
    for k in range(args.repeats):
        for name, worker in plan:
            print(f"[{env}] {name}" + (f" (round {k + 1} of {args.repeats})" if args.repeats > 1 else "") + " …",
                  flush=True)
            rounds[name].append(pair_worker(env, args.population_iters) if worker is None else run_worker(worker))
    for name, worker in counted:  # deterministic: once, whatever --repeats says
        print(f"[{env}] {name} (counted, not timed) …", flush=True)
        res[name] = run_worker(worker)
    if baseline_tree is not None:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline_tree)], capture_output=True)
    for name, results in rounds.items():
        res[name] = median_result(results)
    res["load_average_before_after"] = [load_before[0], os.getloadavg()[0]]
    res["wall_s"] = time.time() - t_start

    phys, single, pop = res["physics"]["sps"], res["single"]["sps"], res["population"]["sps"]
    res["ratios"] = {"population_over_physics": pop / phys}
    rows = [("physics_sps (mj_step loop)", phys, ""), ("single_sps (1 run)", single, ""),
            ("population_sps (33 runs)", pop, f"{res['population']['peak_rss_mb']:.0f} MB peak RSS")]
    if "sb3" in res:
        res["ratios"]["single_over_sb3"] = single / res["sb3"]["sps"]
        rows.append(("sb3_sps (1 run)", res["sb3"]["sps"], f"{res['sb3']['peak_rss_mb']:.0f} MB peak RSS"))
    if compile_ok:
        single_c, pop_c = res["single_compiled"]["sps"], res["population_compiled"]["sps"]
        res["ratios"]["population_compiled_over_physics"] = pop_c / phys
        res["ratios"]["population_compiled_over_eager"] = pop_c / pop
        rows += [("single_sps, compile=true", single_c, ""),
                 ("population_sps, compile=true", pop_c, f"{res['population_compiled']['peak_rss_mb']:.0f} MB peak RSS")]
        if "sb3" in res:
            res["ratios"]["single_compiled_over_sb3"] = single_c / res["sb3"]["sps"]
    if "pair" in res:
        res["ratios"]["two_processes_over_one"] = res["pair"]["sps"] / pop
        rows.append(("pair_sps (2 × 33 runs, joblib)", res["pair"]["sps"], ""))
    for a in algos:
        r = res[f"algo_{a}"]
        res["ratios"][f"algo_{a}_over_physics"] = r["sps"] / phys
        rows.append((f"{a}_sps ({r['runs']} runs{', compile=true' if r['compiled'] else ''})", r["sps"],
                     f"{r['peak_rss_mb']:.0f} MB peak RSS"))
    if baseline_tree is not None:
        for name in [n for n in rounds if n.endswith("_baseline")]:
            current = name[: -len("_baseline")]
            res["ratios"][f"{current}_over_baseline"] = res[current]["sps"] / res[name]["sps"]
            rows.append((f"{current}_sps at {args.baseline}", res[name]["sps"], ""))
    print(f"\n{env}   ({res['machine']['cores']} cores, {res['machine']['cpu']}; load avg "
          f"{load_before[0]:.1f} → {res['load_average_before_after'][1]:.1f})")
    width = max(34, *(len(name) for name, _, _ in rows), *(len(name) for name in res["ratios"]))
    for name, sps, note in rows:
        print(f"  {name:<{width}} {sps:>10,.0f} steps/s  {note}")
    for name, value in res["ratios"].items():
        print(f"  {name:<{width}} {value:>10.2f}")
    print("\n  seconds per iteration, by phase (median round):")
    for name, r in res.items():
        if isinstance(r, dict) and "phase_s_per_iteration" in r:
            print(f"  {name:<{width}} " + "  ".join(f"{k} {v:.3f}" for k, v in r["phase_s_per_iteration"].items()))

    if counted:
        print("\n  work of one eager iteration, by phase: aten ops / Python calls"
              + (f" (current, at {args.baseline}, current/baseline)" if baseline_tree is not None else ""))
        for kind in ("single", "population"):
            cur, base = res[f"work_{kind}"], res.get(f"work_{kind}_baseline")
            for phase in [*cur["phases"], "total"]:
                c = cur["total"] if phase == "total" else cur["phases"][phase]
                line = f"  {kind + ' ' + phase:<{width}} {c['aten_ops']:>9,} / {c['python_calls']:>10,}"
                b = None if base is None else (base["total"] if phase == "total" else base["phases"].get(phase))
                if b is not None:
                    line += (f"   {b['aten_ops']:>9,} / {b['python_calls']:>10,}   "
                             f"{c['aten_ops'] / max(b['aten_ops'], 1):.3f} / {c['python_calls'] / max(b['python_calls'], 1):.3f}")
                print(line)

    out = Path(args.out or REPO / "results" / "bench" / f"throughput_{env}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
