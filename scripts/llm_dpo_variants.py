"""The DPO variant comparison (issue 6): SmolLM2-135M-Instruct on 2-digit addition with on-policy pairs.

    python scripts/llm_dpo_variants.py                      # train (or resume) every variant, then the results
    python scripts/llm_dpo_variants.py --losses sigmoid ipo # a subset
    python scripts/llm_dpo_variants.py --from-runs          # only rewrite the results from the runs' logs

Every variant trains with conf_llm/experiment/dpo_addition.yaml (= `ppo-bench-llm +experiment=dpo_addition
algo.loss=<loss>`) on the same preference pairs and the same budget: the first variant samples the pairs
from the starting policy and writes them to its run folder's pairs.jsonl; every other variant reads that
file (algo.data_file). Writes results/llm/dpo_variants.md (per variant: held-out greedy accuracy before
and after, final reward accuracy and margin over the training pairs, the change in the chosen and the
rejected log-probs from the reference) and results/llm/dpo_logps.png (chosen and rejected log-probs over
training, per variant: "why do chosen and rejected probabilities fall together?").
A killed run resumes when the command is run again; a finished one is not retrained.
Extra Hydra overrides may follow, e.g. `seed=1` or `algo.steps=50`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from ppo_bench.analysis.llm_plots import moving_average, read_scalars
from ppo_bench.common.atomic import atomic_write_text, read_json
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.algorithms.dpo.loss import DPO_LOSSES
from ppo_bench.llm.harness.config import register_configs, run_name
from ppo_bench.llm.harness.models import require
from ppo_bench.llm.launch import train_from_config

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("sigmoid", "ipo", "dpo_sft", "dpop")


def compose_cfg(loss: str, overrides: list[str]):
    with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["+experiment=dpo_addition", f"algo.loss={loss}", "progress=never", *overrides])


def fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def table(rows: list[dict]) -> str:
    head = ("| variant | held-out acc. before | after | reward accuracy | reward margin | Δ log π(y⁺) | Δ log π(y⁻) | steps | wall s |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        p = r["train_pairs_after"] or {}
        lines.append(f"| {r['loss']} | {fmt(r['acc_before'])} | {fmt(r['acc_after'])} | {fmt(p.get('rewards/accuracies'))} | "
                     f"{fmt(p.get('rewards/margins'))} | {fmt(p.get('logps/chosen_change'), 2)} | {fmt(p.get('logps/rejected_change'), 2)} | "
                     f"{r['steps']} | {r['wall_s']} |")
    return head + "\n".join(lines) + "\n"


def plot(runs: dict[str, Path], png: Path) -> None:
    """Chosen and rejected log-probs per step (moving average), one panel per variant."""
    require("matplotlib", hint="pip install -e '.[analysis]'", what="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3.4), sharey=True, squeeze=False)
    for ax, (loss, run_dir) in zip(axes[0], runs.items()):
        s = read_scalars(run_dir)
        for tag, color in (("logps/chosen", "tab:green"), ("logps/rejected", "tab:red")):
            steps, values = zip(*s[tag]) if s.get(tag) else ((), ())
            ax.plot(steps, values, color=color, alpha=0.25, lw=0.8)
            ax.plot(steps, moving_average(list(values), 10), color=color, lw=1.6, label=tag)
        ax.set_title(loss)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("log π(y|x), batch mean")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(png)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--losses", nargs="+", default=list(LOSSES))
    ap.add_argument("--from-runs", action="store_true", help="only rewrite the results from finished runs")
    ap.add_argument("--out", default=str(ROOT / "results" / "llm"))
    args, overrides = ap.parse_known_args(argv)
    # nargs="+" also swallows Hydra overrides written after --losses (`--losses ipo algo.steps=50`)
    overrides += [x for x in args.losses if "=" in x]
    args.losses = [x for x in args.losses if "=" not in x]
    unknown = [x for x in args.losses if x not in DPO_LOSSES]
    if unknown or not args.losses:
        ap.error(f"--losses takes DPO losses ({', '.join(DPO_LOSSES)}), got {unknown or 'none'}")
    register_configs()
    runs, rows, pairs_file = {}, [], None
    try:
        for loss in args.losses:
            extra = [f"algo.data_file={pairs_file}"] if pairs_file else []
            cfg = compose_cfg(loss, [*overrides, *extra])
            run_dir = Path(cfg.run_root) / run_name(cfg)
            summary = read_json(run_dir / "summary.json") if args.from_runs else train_from_config(cfg)
            if not summary:
                raise ConfigError(f"{run_dir} has no summary.json: run it first (without --from-runs)")
            pairs_file = pairs_file or (run_dir / "pairs.jsonl")  # the first variant's pairs are everyone's
            runs[loss] = run_dir
            rows.append({"loss": loss, **{k: summary.get(k) for k in ("model", "acc_before", "acc_after", "train_pairs_after", "steps", "wall_s", "pairs")}})
            print(f"{loss}: held-out accuracy {fmt(summary.get('acc_before'))} -> {fmt(summary.get('acc_after'))}", flush=True)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    pairs = rows[0]["pairs"] or {}
    model = "SmolLM2-135M-Instruct" if rows[0].get("model") == "smollm2" else rows[0].get("model")
    md = (f"# DPO variants on 2-digit addition ({model})\n\n"
          f"Command: `{' '.join(['python scripts/llm_dpo_variants.py', *overrides])}` (config: conf_llm/experiment/dpo_addition.yaml).\n"
          f"Pairs: {pairs.get('pairs')} ({pairs.get('on_policy')} on-policy, {pairs.get('fallback')} fallback: reference answer vs a wrong sample); "
          f"accuracy of the starting policy's samples: {fmt(pairs.get('sample_accuracy'))}. Held-out: greedy exact match.\n"
          "Reward accuracy, margin and Δ log π are over all training pairs after the last step (Δ = log π − log π_ref, summed over response tokens).\n\n"
          + table(rows) + "\nFigure: dpo_logps.png (chosen and rejected log-probs per step).\n")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "dpo_variants.md", md)
    atomic_write_text(out / "dpo_variants.json", json.dumps(rows, indent=2))
    plot(runs, out / "dpo_logps.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
