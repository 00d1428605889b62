"""``ppo-bench-report``: tables and figures from run folders, without retraining.

``ppo-bench-report FOLDER --by KEY[,KEY...]``: any sweep, runs grouped by config keys (``analysis.sweep``).
``ppo-bench-report RUN_ROOT... [--experiment table1]``: the paper's Table 1 (``analysis.table1``).
``ppo-bench-report RUN_ROOT --experiment figure3``: the paper's Figure 3 (``analysis.figure3``).
``ppo-bench-report FOLDER --experiment implementation_matters``: Engstrom et al. 2020's Tables 2-3 and trust-region
figures (``analysis.implementation_matters``).
Each writes into ``<first folder>/report/`` unless ``--out-dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ppo_bench.common.errors import (ConfigError, OneLineArgumentParser, as_line, check_writable, run_command,
                                     user_error_line)
from ppo_bench.analysis.scores import BEST_READINGS, SCORE_EPISODES, TAG_TAIL
from ppo_bench.common.paths import RANDOM_SCORES

DEFAULT_RANDOM = RANDOM_SCORES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = OneLineArgumentParser(
        prog="ppo-bench-report",
        description="Tables and figures from the TensorBoard event files of runs. With --by: any sweep, its runs "
                    "grouped by config keys (scores.csv, scores.md, curves.png). Without: the paper's Table 1 "
                    "(table1.csv, table1.md, learning_curves.png, table1_scores.png).",
        epilog="examples:\n"
               "  ppo-bench-report multirun/2026-12-02/10-00-00 --by algo.anneal_lr,env.clip_actions "
               "--tags policy/mean_std\n"
               "  ppo-bench-report runs/table1 --experiment table1 --out-dir results",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_roots", nargs="+", metavar="RUN_ROOT",
                    help="folder(s) holding the runs (with --by: one folder, runs found at any depth; "
                         "for Table 1: <env>/<setting>/seed<k>/ runs)")
    ap.add_argument("--by", help="comma-separated keys of the runs' resolved config to group by, e.g. "
                                 "objective.name,objective.eps or algo.anneal_lr,env.clip_actions (seeds are pooled)")
    ap.add_argument("--tags", default="", help="with --by: more scalar tags to plot beside charts/episodic_return, "
                                               "comma-separated, e.g. env/reward_ctrl,policy/mean_std; each also "
                                               "gets its end-of-training value and its range per group "
                                               "(diagnostics.csv, scores.md)")
    ap.add_argument("--tail", type=int, default=TAG_TAIL, help="with --tags: logged values at the end of a run "
                                                                "that a tag's end-of-training value averages")
    ap.add_argument("--experiment", help="conf/experiment/<name>.yaml names the expected grid (envs × settings × "
                                         "seeds), so runs never started are reported missing; default: every env, "
                                         "setting and seed found")
    ap.add_argument("--random-scores", default=str(DEFAULT_RANDOM), help="CSV of scripts/random_scores.py")
    ap.add_argument("--best", choices=sorted(BEST_READINGS), default="run",
                    help="reading of the paper's 'best result' = 1: the best single run (default) or the best "
                         "setting's mean over seeds")
    ap.add_argument("--last", type=int, default=SCORE_EPISODES, help="episodes a run's score averages")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap replications for rliable's CIs")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=CSV",
                    help="Table 1: an earlier sweep's table1.csv shown beside this one as a column LABEL, on this "
                         "sweep's scale (repeatable), e.g. 'annealed step size=results/table1_annealed/table1.csv'")
    ap.add_argument("--out-dir", default=None, help="folder for the outputs (default: <first RUN_ROOT>/report; "
                                                    "the committed results/ only when named)")
    for name, default in [("csv", "table1.csv"), ("md", "table1.md"), ("curves", "learning_curves.png"),
                          ("scores-fig", "table1_scores.png")]:
        ap.add_argument(f"--{name}", help=f"path of that output (default: OUT_DIR/{default})", default=None)
    args = ap.parse_args(argv)
    args.out_dir = Path(args.out_dir) if args.out_dir else Path(args.run_roots[0]) / "report"
    out = args.out_dir
    args.csv = Path(args.csv or out / "table1.csv")
    args.md = Path(args.md or out / "table1.md")
    args.curves = Path(args.curves or out / "learning_curves.png")
    args.scores_fig = Path(args.scores_fig or out / "table1_scores.png")
    for key in ("last", "reps", "tail"):
        if getattr(args, key) < 1:
            ap.error(f"--{key}={getattr(args, key)} must be a positive integer")
    for v in args.variant:
        if "=" not in v or not v.split("=", 1)[0].strip() or not v.split("=", 1)[1].strip():
            ap.error(f"--variant {v!r}: expected LABEL=PATH_TO_TABLE1_CSV")
    if args.by is not None and len(args.run_roots) > 1:
        ap.error("--by reports one folder (runs are found at any depth below it)")
    return args


def split_keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def main_sweep(args: argparse.Namespace, command: str) -> int:
    try:
        from ppo_bench.analysis.sweep import sweep_report
    except ImportError as e:  # matplotlib and pandas are the `analysis` extra
        print(f"error: {e}; install the analysis extra: pip install 'ppo-bench[analysis]'", file=sys.stderr)
        return 2
    check_inputs(args)
    try:
        rep = sweep_report(args.run_roots[0], split_keys(args.by), split_keys(args.tags), out_dir=args.out_dir,
                           random_scores=args.random_scores, last=args.last, reps=args.reps, seed=args.seed,
                           command=command, tail=args.tail)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {as_line(e)}", file=sys.stderr)
        return 2
    t = rep.table
    print(f"{len(rep.runs)} runs, {len(t)} groups × environments")
    cols = ["env", *rep.by, "seeds", "score_mean", "score_std", "mean_lo", "mean_hi", "iqm", "frac_below_random"]
    print(t[cols].to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    for note in rep.notes:
        print(f"note: {note}")
    print(f"wrote {', '.join(str(f) for f in rep.files)}")
    return 0


def main_experiment(args: argparse.Namespace, command: str) -> int:
    """An experiment with a report of its own (Figure 3, Implementation Matters): its tables and figures."""
    try:
        if args.experiment == "figure3":
            from ppo_bench.analysis.figure3 import figure3_report
            from ppo_bench.analysis.random_policy import load_random_scores
        else:
            from ppo_bench.analysis.implementation_matters import implementation_matters_report
    except ImportError as e:  # matplotlib and pandas are the `analysis` extra
        print(f"error: {e}; install the analysis extra: pip install 'ppo-bench[analysis]'", file=sys.stderr)
        return 2
    check_inputs(args)
    try:
        if args.experiment == "figure3":
            random = load_random_scores(Path(args.random_scores)) if Path(args.random_scores).exists() else {}
            files = figure3_report(args.run_roots[0], args.out_dir, command, random, reps=args.reps, seed=args.seed)
        else:
            files = implementation_matters_report(args.run_roots[0], args.out_dir, command, reps=args.reps,
                                                  seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {as_line(e)}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


def check_inputs(args: argparse.Namespace) -> None:
    """Before anything is read: the run roots are folders and the outputs can be written (the report is not made in
    vain); a ConfigError or an OSError naming the path otherwise (``ppo_bench.common.errors``)."""
    for root in args.run_roots:
        if not Path(root).is_dir():
            raise ConfigError(f"run root {root} is not a folder")
    if args.by is not None or args.experiment in ("figure3", "implementation_matters"):
        check_writable(args.out_dir, folder=True)
    else:
        for path in (args.csv, args.md, args.curves, args.scores_fig):
            check_writable(path)


def main(argv: list[str] | None = None) -> int:
    """The command: every error a user can cause in one line, exit code 2 (``ppo_bench.common.errors``)."""
    return run_command(lambda: report_command(argv))


def report_command(argv: list[str] | None) -> int:
    args = parse_args(argv)
    command = shlex.join(["ppo-bench-report", *(argv if argv is not None else sys.argv[1:])])
    if args.by is not None:
        return main_sweep(args, command)
    if args.experiment in ("figure3", "implementation_matters"):
        return main_experiment(args, command)
    try:
        from ppo_bench.analysis.plots import plot_learning_curves, plot_scores
        from ppo_bench.analysis.random_policy import load_random_scores
        from ppo_bench.analysis.runs import experiment_grid, find_runs, found_grid
        from ppo_bench.analysis.table1 import build_table1, read_variant, render_markdown, write_csv
    except ImportError as e:  # matplotlib and pandas are the `analysis` extra
        print(f"error: {e}; install the analysis extra: pip install 'ppo-bench[analysis]'", file=sys.stderr)
        return 2
    notes: list[str] = []
    try:
        grid = experiment_grid(args.experiment) if args.experiment else None
        random = load_random_scores(Path(args.random_scores))
        for v in args.variant:
            if not Path(v.split("=", 1)[1].strip()).is_file():
                raise FileNotFoundError(f"variant table {v.split('=', 1)[1].strip()} is not a file (a table1.csv "
                                        "written by ppo-bench-report)")
        check_inputs(args)
        runs = find_runs([Path(r) for r in args.run_roots], notes)
        grid = grid or found_grid(runs)
    except Exception as e:  # a missing folder or file, an unknown experiment: one line, no traceback
        line = user_error_line(e)
        if line is None and not isinstance(e, (ValueError, FileNotFoundError, KeyError)):
            raise
        print(f"error: {as_line(line or e)}", file=sys.stderr)
        return 2
    if not grid.envs:
        print(f"error: no runs under {', '.join(args.run_roots)} and no --experiment to name the expected ones",
              file=sys.stderr)
        return 2
    t = build_table1(runs, random, grid, best=args.best, last=args.last, reps=args.reps, seed=args.seed)
    t.notes += notes
    try:
        for v in args.variant:
            label, path = (x.strip() for x in v.split("=", 1))
            t.variants[label] = read_variant(path, t)
    except (ValueError, FileNotFoundError) as e:  # pandas' parser errors are ValueErrors
        print(f"error: {as_line(e)}", file=sys.stderr)
        return 2
    write_csv(t, args.csv)
    from ppo_bench.common.atomic import atomic_write_text

    atomic_write_text(args.md, render_markdown(t, command, args.run_roots, args.reps))
    plot_learning_curves(t, runs, args.curves)
    plot_scores(t, args.scores_fig)

    print(f"{len(t.runs)} finished runs of {len(grid.keys())} expected; "
          f"{len(t.incomplete)} missing, unfinished or failed{' (listed in ' + str(args.md) + ')' if t.incomplete else ''}")
    width = max(len(lab) for lab in t.column.label)
    extra = "".join(f"   {label}" for label in t.variants)
    print(f"{'setting':<{width}}  runs   normalised   paper   − paper{extra}")
    for r in t.column.itertuples():
        more = "".join(f"   {v.column[r.setting]:{len(label)}.2f}" for label, v in t.variants.items())
        print(f"{r.label:<{width}}  {r.runs:>4}   {r.normalized_mean:10.2f}   {r.paper:5.2f}   "
              f"{r.normalized_mean - r.paper:+7.2f}{more}")
    if t.training_s:
        print(f"training time: {sum(t.training_s.values()) / 3600:.2f} core-hours over {len(t.training_s)} job(s) "
              f"(longest {max(t.training_s.values()) / 3600:.2f} h)")
    for note in t.notes:
        print(f"note: {note}")
    print(f"wrote {args.csv}, {args.md}, {args.curves}, {args.scores_fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
