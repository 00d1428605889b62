"""One honest tuning result: tune PPO-clip on one Table-1 task with ppo-bench-tune, then train the tuned preset and the
paper's settings (Table 3, ε = 0.2) side by side at five seeds that no trial trained on, and report both.

Three steps, each a ppo-bench command that resumes where a killed one stopped (the same command):

1. tune: ``ppo-bench-tune <workdir>/study env=<env> total_timesteps=<budget> --trials <n> --batch <b> --seeds 0,1
   --preset tuned_<env>`` (the space conf/tune/ppo.yaml: step size, ε, λ, γ, entropy);
2. compare: ``ppo-bench env=<env> total_timesteps=<compare budget> population.seeds=[100,...,104]`` once with
   ``preset=tuned_<env>``, once without (the paper's settings), each one population of five runs;
   and again at the tuning budget (``--also-at``), where the trials were scored;
3. report: each setting's final scores (mean return of the last 100 episodes) per seed, mean ± std, normalised as
   Table 1 (random policy 0, baselines' PPO2 at 1M steps 1), and a bootstrap 95% interval of the difference of
   means, to ``results/tuning_<env>.json`` and ``.md``.

Sizing: the default plan, Hopper-v5, 64 trials × 2 seeds × 300k steps, is 38.4M steps if nothing is pruned, about
25M with the median pruner stopping a third of the work (rl-baselines3-zoo's setting); the comparison, 2 × 5 runs ×
1M steps, its two populations trained at once (one core each). At the committed benchmark's rate (a Hopper-v5
population, one process: about 9,500 steps/s, results/bench/throughput_Hopper-v5.json) that is about 45 min and 20
min; on a host whose MuJoCo runs at 40% of that benchmark's speed (as on 2026-12-07: the population trained 4,000
steps/s) 2.5 times as long. ``--plan`` measures this machine's physics for 3 s, scales the benchmark's rate by it,
and prints the commands and the estimate for the options given; it trains nothing. Tuning at 1M steps per trial
instead (``--budget 1000000``) costs about 3.3× as much.

On a quiet machine:

    python scripts/tuning_result.py --env hopper --budget 300000 --trials 64 --batch 16
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRESH_SEEDS = [100, 101, 102, 103, 104]  # never a tuning seed (those are --tune-seeds)
THROUGHPUT = REPO / "results" / "bench" / "throughput_Hopper-v5.json"  # the plan's yardstick: a population's rate


def population_sps(seconds: float = 3.0) -> tuple[float, float]:
    """(a Hopper-v5 population's training steps/s on one core of this machine, its MuJoCo physics steps/s): the
    population's rate in the committed benchmark, scaled by this machine's physics rate against the benchmark's
    (a population's collect is bound by the physics; hosts differ by more than 2x)."""
    sys.path.insert(0, str(REPO))
    from scripts.bench_throughput import physics_worker

    bench = json.loads(THROUGHPUT.read_text())
    here = physics_worker("Hopper-v5", seconds)["sps"]
    return bench["population"]["sps"] * here / bench["physics"]["sps"], here


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="hopper", help="an env group option of a Table-1 task (default hopper)")
    ap.add_argument("--budget", type=int, default=300_000, help="steps per tuning run (default 300000)")
    ap.add_argument("--compare-budget", type=int, default=1_000_000, help="steps per comparison run (default 1M, the paper's)")
    ap.add_argument("--also-at", default="tuning", help="comparison budgets besides --compare-budget, comma-separated: "
                    "'tuning' (the default) is --budget, the budget the trials were scored at; 'none' for none")
    ap.add_argument("--trials", type=int, default=64, help="trials (default 64)")
    ap.add_argument("--batch", type=int, default=16, help="trials per population (default 16)")
    ap.add_argument("--tune-seeds", default="0,1", help="seeds of every trial (default 0,1)")
    ap.add_argument("--workdir", default="runs/tuning_result", help="the study and the comparison's runs")
    ap.add_argument("--plan", action="store_true", help="print the commands and the estimated time; run nothing")
    return ap.parse_args(argv)


def steps(a: argparse.Namespace) -> tuple[float, float]:
    tune = a.trials * len(a.tune_seeds.split(",")) * a.budget * (2 / 3)  # the median pruner: about a third saved
    return tune, 2 * len(FRESH_SEEDS) * sum(budgets(a))


def budgets(a: argparse.Namespace) -> list[int]:
    """The comparison's budgets: --compare-budget first, then --also-at's."""
    extra = [] if a.also_at == "none" else [a.budget if b == "tuning" else int(b) for b in a.also_at.split(",")]
    return list(dict.fromkeys([a.compare_budget, *extra]))


def folder(name: str, budget: int, a: argparse.Namespace) -> str:
    """A comparison's run folder under <workdir>/<env>: 'tuned', 'paper' at --compare-budget, 'tuned_<steps>' else."""
    return name if budget == a.compare_budget else f"{name}_{budget}"


def main(argv=None) -> int:
    a = parse_args(argv)
    work = Path(a.workdir)
    preset = f"tuned_{a.env}"
    py = sys.executable
    seeds = "population.seeds=[" + ",".join(map(str, FRESH_SEEDS)) + "]"
    tune = [py, "-m", "ppo_bench.tune", str(work / a.env / "study"), f"env={a.env}", f"total_timesteps={a.budget}",
            "progress=never", "--trials", str(a.trials), "--batch", str(a.batch), "--seeds", a.tune_seeds,
            "--preset", preset]
    compare = {(name, b): [py, "-m", "ppo_bench", f"env={a.env}", f"total_timesteps={b}", seeds, "progress=never",
                           "resume=auto", f"run_root={work / a.env / folder(name, b, a)}", *extra]
               for b in budgets(a) for name, extra in (("tuned", [f"preset={preset}"]), ("paper", []))}
    tune_steps, compare_steps = steps(a)
    sps, physics = population_sps()
    print(f"plan: tune {tune_steps / 1e6:.1f}M steps (~{tune_steps / sps / 60:.0f} min), compare "
          f"{compare_steps / 1e6:.1f}M steps (~{compare_steps / 2 / (sps * 0.7) / 60:.0f} min: two processes at once) "
          f"at about {sps:.0f} steps/s per process (a Hopper-v5 population on one core of this machine, whose "
          f"MuJoCo physics runs {physics:.0f} steps/s: {THROUGHPUT.relative_to(REPO)} scaled by it)")
    for argv_ in (tune, *compare.values()):
        print("  " + " ".join(shlex.quote(x) for x in argv_))
    if a.plan:
        return 0
    code = subprocess.run(tune, cwd=REPO).returncode
    if code:
        return stopped(tune, code)
    pairs = list(compare.values())
    for k in range(0, len(pairs), 2):  # tuned and paper at one budget at once, one core each
        running = [subprocess.Popen(argv_, cwd=REPO) for argv_ in pairs[k:k + 2]]
        for argv_, p in zip(pairs[k:k + 2], running):
            code = p.wait()
            if code:
                return stopped(argv_, code)
    return report(a, work, preset)


def stopped(argv_: list[str], code: int) -> int:
    """A step that did not finish: stopped by a signal (128 + its number; every run checkpointed, the same command
    resumes) or failed. Its exit code is this script's."""
    what = "was stopped by a signal; the same command resumes it" if code > 128 else "failed"
    print(f"{'interrupted' if code > 128 else 'error'}: {' '.join(argv_[:4])} ... {what}", file=sys.stderr)
    return code


def final_scores(root: Path) -> dict[int, float]:
    out = {}
    for status in sorted(root.glob("*/*/seed*/status.json")):
        d = json.loads(status.read_text())
        out[int(status.parent.name[len("seed"):])] = float(d["score_last100"])
    return out


def command(a: argparse.Namespace) -> str:
    """The command line that makes this result (the options that differ from the defaults spelled out)."""
    defaults = parse_args([])
    extra = [f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if k != "plan" and v != getattr(defaults, k)]
    return " ".join(["python scripts/tuning_result.py", *extra])


def study_summary(folder: Path) -> dict:
    """How the study's trials ended and its best trial, read from its SQLite file."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{folder / 'study.db'}")
    states = [t.state.name.lower() for t in study.trials]
    return {"trials": len(states), "complete": states.count("complete"), "pruned": states.count("pruned"),
            "failed": states.count("fail"), "best_trial": study.best_trial.number, "best_value": study.best_value,
            "best_params": study.best_params}


def comparison(root: Path, budget: int, a: argparse.Namespace, norm) -> dict:
    """The tuned and the paper's settings at one budget: each seed's final score, mean ± std, normalised, and a
    bootstrap 95% interval of the difference of the means."""
    scores = {name: final_scores(root / folder(name, budget, a)) for name in ("tuned", "paper")}
    values = {k: np.array(list(v.values())) for k, v in scores.items()}
    means = {k: float(v.mean()) for k, v in values.items()}
    rng = np.random.default_rng(0)
    t, p = values["tuned"], values["paper"]
    boot = [rng.choice(t, len(t)).mean() - rng.choice(p, len(p)).mean() for _ in range(10_000)]
    return {"budget": budget,
            "settings": {k: {"scores": v, "mean": means[k], "std": float(values[k].std()), "normalised_mean": norm(means[k])}
                         for k, v in scores.items()},
            "difference_of_means": float(t.mean() - p.mean()),
            "difference_95ci": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}


def report(a: argparse.Namespace, work: Path, preset: str) -> int:
    sys.path.insert(0, str(REPO))
    from ppo_bench.common.paths import CONF_DIR
    from ppo_bench.tune.tuner import compose, normalisers

    env_id = compose([f"env={a.env}", "run_root=."]).env.id
    norm = normalisers([env_id], {})[env_id]
    result = {"env": env_id, "tuning": {"budget": a.budget, "trials": a.trials, "batch": a.batch,
                                        "seeds": a.tune_seeds, "preset": (CONF_DIR / "preset" / f"{preset}.yaml").read_text()},
              "fresh_seeds": FRESH_SEEDS, "normalisation": norm.describe(),
              "comparisons": [comparison(work / a.env, b, a, norm) for b in budgets(a)]}
    result["study"] = study_summary(work / a.env / "study")
    result["command"] = command(a)
    out = REPO / "results" / f"tuning_{env_id}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    figures = []
    for name in ("history.png", "importances.png"):  # Optuna's figures, written by ppo-bench-tune beside the study
        if (work / a.env / "study" / name).is_file():
            figures.append(out.with_name(f"{out.name}_{name}"))
            shutil.copyfile(work / a.env / "study" / name, figures[-1])
    st = result["study"]
    lines = [f"# Tuned PPO-clip against the paper's settings on {env_id}", "",
             f"Made by `{result['command']}` (in a checkout of ppo-bench; it resumes where it stopped).", "",
             f"Tuned by `ppo-bench-tune`: {a.trials} trials × seeds {a.tune_seeds} × {a.budget} steps "
             f"({st['complete']} complete, {st['pruned']} pruned by the median pruner; the best, trial {st['best_trial']}, "
             f"scored {st['best_value']:.3f} normalised); compared at {' and '.join(map(str, budgets(a)))} steps on seeds "
             f"{FRESH_SEEDS} (none tuned on).", "",
             "The tuned preset (conf/preset/" + preset + ".yaml):", "", "```yaml",
             result["tuning"]["preset"].rstrip(), "```", "",
             "| steps | setting | " + " | ".join(f"seed {s}" for s in FRESH_SEEDS) + " | mean ± std | normalised |",
             "|---" * (len(FRESH_SEEDS) + 4) + "|"]
    for c in result["comparisons"]:
        for k, v in c["settings"].items():
            lines.append(f"| {c['budget']:,} | {k} | " + " | ".join(f"{v['scores'].get(s, math.nan):.1f}" for s in FRESH_SEEDS)
                         + f" | {v['mean']:.1f} ± {v['std']:.1f} | {v['normalised_mean']:.2f} |")
    lines.append("")
    for c in result["comparisons"]:
        lo, hi = c["difference_95ci"]
        lines.append(f"Tuned − paper at {c['budget']:,} steps: {c['difference_of_means']:.1f} (bootstrap 95% interval "
                     f"[{lo:.1f}, {hi:.1f}]).")
    lines += ["", *(f"![{f.stem}]({f.name})" for f in figures)] if figures else []
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
