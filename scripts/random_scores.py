#!/usr/bin/env python
"""The random policy's score per environment: 0 of Table 1's normalised scale.

Uniform random actions (``action_space.sample()``), a fixed seed per episode, at least 100
episodes per environment; the environments are built exactly as the runs build them (the
``conf/env`` presets). Writes one row per environment:
``env, episodes, seed, score_mean, score_std, score_sem, length_mean``
(score = total reward of an episode; mean, sample std and standard error over episodes).

    python scripts/random_scores.py                                  # the 7 envs of experiment=table1
    python scripts/random_scores.py --envs hopper swimmer --out /tmp/random.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from ppo_bench.analysis.random_policy import random_policy_episodes, summarize, write_random_scores
from ppo_bench.analysis.runs import experiment_env_presets
from ppo_bench.rl.engine.config import CONF_DIR

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="table1", help="take the env list from conf/experiment/<name>.yaml")
    ap.add_argument("--envs", nargs="+", help="conf/env presets instead (e.g. hopper swimmer)")
    ap.add_argument("--episodes", type=int, default=100, help="episodes per env (≥ 100 for Table 1)")
    ap.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    ap.add_argument("--out", default=str(REPO / "results" / "random_scores.csv"))
    args = ap.parse_args(argv)
    if args.episodes < 1:
        ap.error(f"--episodes={args.episodes} must be a positive integer")
    presets = args.envs or experiment_env_presets(args.experiment)
    rows = []
    for preset in presets:
        path = CONF_DIR / "env" / f"{preset}.yaml"
        if not path.exists():
            allowed = " ".join(sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml")))
            ap.error(f"--envs {preset}: no conf/env/{preset}.yaml; allowed: {allowed}")
        env = OmegaConf.load(path)
        kwargs = OmegaConf.to_container(env.kwargs) if "kwargs" in env else {}
        t0 = time.perf_counter()
        returns, lengths = random_policy_episodes(env.id, args.episodes, args.seed, kwargs)
        row = summarize(env.id, args.seed, returns, lengths)
        rows.append(row)
        print(f"{env.id:<28} {row['episodes']} episodes  score {row['score_mean']:10.3f} ± {row['score_sem']:.3f} (sem)"
              f"  mean length {row['length_mean']:7.1f}  {time.perf_counter() - t0:5.1f} s", flush=True)
    write_random_scores(rows, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
