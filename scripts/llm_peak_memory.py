"""Peak memory of PPO, GRPO and DPO side by side: the four, three and two models of each method.

    python scripts/llm_peak_memory.py                       # SmolLM2-135M-Instruct, the reference experiments
    python scripts/llm_peak_memory.py --model tiny          # a seconds-long check of the script itself

Each algorithm trains a few steps of its reference experiment (conf_llm/experiment/<algo>_addition.yaml,
with a small evaluation and, for DPO, a few task pairs) in a fresh process, one after the other, and
the peak resident memory of that process (summary.json's ``peak_rss_mb``) is collected, with the phase of the
run that reached it (``peak_rss_phase``: loading, setup and its parts, step, evaluation, checkpoint). Writes
results/llm/peak_memory.json and .md with the models each method holds: PPO the policy with its value
head, a reference and the reward (here the task's verifier: a reward model would add one more LM);
GRPO the policy (β = 0 in its reference run: no reference); DPO the policy, whose reference
log-probs are computed once and cached. On the reference experiments' settings, so the figures are
those of the reference runs, not of equal batch sizes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.common.machine import describe

ROOT = Path(__file__).resolve().parents[1]
MODELS_HELD = {
    "ppo": "policy + value head (shared trunk), reference, verifier",
    "grpo": "policy, verifier (beta = 0: no reference)",
    "dpo": "policy (reference log-probs cached once)",
}
SMALL = {"ppo": [], "grpo": [], "dpo": ["algo.num_prompts=4", "algo.num_samples=4"]}


def measure(algo: str, model: str, steps: int, run_root: Path) -> dict:
    args = [f"+experiment={algo}_addition", f"run_root={run_root}", f"algo.steps={steps}", "task.n_eval=8",
            "eval.every=0", "eval.before=false", "eval.max_new_tokens=16", "save_model=false", "progress=never",
            "max_wall_s=null", *SMALL[algo]]
    if model == "tiny":
        args += ["model=tiny", "model.freeze_embeddings=false"]
    r = subprocess.run([sys.executable, "-m", "ppo_bench.llm.cli", *args], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"error: {algo} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    summary = json.loads(next(run_root.rglob("summary.json")).read_text())
    return {"algo": algo, "models_held": MODELS_HELD[algo], "peak_rss_mb": summary["peak_rss_mb"],
            "peak_rss_phase": summary.get("peak_rss_phase"), "peak_rss_by_phase": summary.get("peak_rss_by_phase"),
            "steps": summary["steps"],
            "seconds_per_step": summary["seconds_per_step"].get("total", summary["seconds_per_step"].get("update")), "command": "ppo-bench-llm " + " ".join(args)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "llm")
    args = p.parse_args()
    rows = []
    for algo in ("ppo", "grpo", "dpo"):
        with tempfile.TemporaryDirectory(prefix=f"peak_memory_{algo}_") as tmp:
            print(f"{algo} …", flush=True)
            rows.append(measure(algo, args.model, args.steps, Path(tmp)))
    res = {"model": args.model, "rows": rows, "machine": describe("torch", "transformers"),
           "command": "python scripts/llm_peak_memory.py " + " ".join(sys.argv[1:])}
    stem = "peak_memory" if args.model == "smollm2" else f"peak_memory_{args.model}"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(res, indent=2) + "\n")
    lines = [f"# Peak memory of PPO, GRPO and DPO ({args.model}, {args.steps} steps of each reference experiment)", "",
             f"Regenerate: `{res['command']}`", "",
             "| algo | models held | peak RSS (MB) | reached in | each phase that raised the peak: the peak it left (MB) | s/step |",
             "|---|---|---:|---|---|---:|"]
    lines += [f"| {r['algo']} | {r['models_held']} | {r['peak_rss_mb']:.0f} | {r['peak_rss_phase']} | "
              + ", ".join(f"{k} {v:.0f}" for k, v in (r["peak_rss_by_phase"] or {}).items()) + f" | {r['seconds_per_step']} |"
              for r in rows]
    atomic_write_text(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
