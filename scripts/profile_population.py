#!/usr/bin/env python
"""Where does a population iteration go? The profile behind the throughput figures (issue 3).

Trains the Table-1 population (11 settings × 3 seeds, one torch thread) for a few iterations and
splits each iteration's wall time into: environment stepping (the vector env's step), the rest of
the rollout (policy forward, sampling, normalisation, bookkeeping), GAE + batching, and the update's
minibatch steps; then lists the torch operators that dominate the update (torch.profiler).

    python scripts/profile_population.py                     # HalfCheetah-v5, 3 timed iterations
    python scripts/profile_population.py --env Hopper-v5 --iters 2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from hydra import compose, initialize_config_dir

from ppo_bench.rl.launch import population_specs
from ppo_bench.rl.engine.config import CONF_DIR, register_configs
from ppo_bench.rl.engine.trainer import PopulationTrainer


class Timer:
    def __init__(self):
        self.total = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0
        return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--top", type=int, default=12, help="operators listed from the update's profile")
    args = ap.parse_args()

    torch.set_num_threads(1)
    register_configs()
    overrides = [f"env.id={args.env}", f"run_root={tempfile.mkdtemp(prefix='ppo_bench_prof_')}", "progress=never",
                 "checkpoint_every=1000000", "experiment=table1"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    tr = PopulationTrainer(cfg, population_specs(cfg))
    tr.start(resume=False)
    tr.iterate()  # warm-up

    timers = {name: Timer() for name in ("env.step", "collect", "batch", "update", "iteration")}
    tr.envs.step = timers["env.step"].wrap(tr.envs.step)
    for name in ("collect", "batch", "update"):
        setattr(tr, name, timers[name].wrap(getattr(tr, name)))
    steps = 0
    for _ in range(args.iters):
        t0 = time.perf_counter()
        steps += tr.iterate()[0]
        timers["iteration"].total += time.perf_counter() - t0
    n = args.iters
    it = timers["iteration"].total / n
    rows = [("environment stepping (vector env step)", timers["env.step"].total / n),
            ("rest of the rollout (policy, sampling, normalisation)", (timers["collect"].total - timers["env.step"].total) / n),
            ("GAE and batching", timers["batch"].total / n),
            ("minibatch updates and diagnostics", (timers["update"].total - timers["batch"].total) / n)]
    rows.append(("other (logging, checkpoints)", it - sum(s for _, s in rows)))
    print(f"\n{args.env}: {tr.R} runs, {steps / n:,.0f} steps per iteration, {it:.2f} s per iteration "
          f"({steps / timers['iteration'].total:,.0f} steps/s)")
    for name, s in rows:
        print(f"  {name:<55} {s:6.2f} s  {100 * s / it:5.1f}%")

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tr.update()
    print(f"\nupdate, by operator (self CPU time, one update of {cfg.algo.epochs} epochs):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    tr.close()


if __name__ == "__main__":
    main()
