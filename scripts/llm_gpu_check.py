"""The LM module on a GPU: a few GRPO, DPO and PPO steps of SmolLM2-135M-Instruct on 2-digit addition with
``device=cuda`` (bfloat16 autocast where the GPU supports it, float32 master weights), each run then evaluated by
ppo-bench-llm-eval, and per algorithm the figures a GPU user asks first: seconds per step, the held-out accuracy
before and after, the peak GPU memory (``torch.cuda.max_memory_allocated`` of the training process) and the peak
resident memory.

    python scripts/llm_gpu_check.py                       # on a machine with a CUDA GPU: results/llm/gpu_check.json
    python scripts/llm_gpu_check.py --device cpu --model tiny --steps 2 --out /tmp/gpu_check.json   # the CPU path

Each algorithm trains in its own ``ppo-bench-llm`` process (its own peak memory), under ``--workdir``; a run that
exists there is resumed or skipped as ppo-bench-llm does. Without a CUDA device ``--device cuda`` is refused in one
line (exit code 2)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppo_bench.common.errors import ConfigError, OneLineArgumentParser, run_command  # noqa: E402

ALGOS = {  # a few steps each, at the settings of the reference runs otherwise (conf_llm/experiment/*_addition.yaml)
    "grpo": ["+experiment=grpo_addition"],
    "dpo": ["+experiment=dpo_addition"],
    "ppo": ["+experiment=ppo_addition"],
}


def machine(device: str) -> dict:
    """``ppo_bench.common.machine.describe`` (cores, CPU, commit, versions) and the GPU's name, bf16 and memory."""
    import torch

    from ppo_bench.common.machine import describe

    out = {**describe("torch", "transformers"), "device": device, "cuda": torch.version.cuda}
    if device == "cuda":
        out.update(gpu=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported(),
                   gpu_memory_gb=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    return out


def run_algo(algo: str, a: argparse.Namespace, work: Path) -> dict:
    """Train one algorithm's run, evaluate it, and read its figures from summary.json and the evaluation."""
    root = work / algo
    cmd = ["ppo-bench-llm", *ALGOS[algo], f"model={a.model}", f"algo.steps={a.steps}",
           f"device={a.device}", f"run_root={root}", "progress=never", "save_model=true", *a.overrides]
    train = subprocess.run([sys.executable, "-m", "ppo_bench.llm.cli", *cmd[1:]], cwd=REPO, capture_output=True, text=True)
    summaries = sorted(root.glob("**/summary.json"))
    if train.returncode != 0 or not summaries:
        return {"command": " ".join(map(shlex.quote, cmd)), "error": (train.stderr or train.stdout).strip()[-2000:]}
    run_dir = summaries[0].parent
    ev = subprocess.run([sys.executable, "-m", "ppo_bench.llm.evaluate_run", str(run_dir), "--n", str(a.eval_n),
                         "--json", str(run_dir / "gpu_check_eval.json")], cwd=REPO, capture_output=True, text=True)
    s = json.loads(summaries[0].read_text())
    per_step = s["seconds_per_step"]  # by phase, with their total (DPO's: its update only; its pairs are set-up)
    out = {"command": " ".join(map(shlex.quote, cmd)), "run_dir": str(run_dir), "steps": s["steps"],
           "updates": s["updates"], "seconds_per_step": per_step.get("total", sum(per_step.values())),
           "compute_dtype": s.get("compute_dtype"), "peak_gpu_mb": s.get("peak_gpu_mb"),
           "peak_rss_mb": s.get("peak_rss_mb"), "acc_before": s.get("acc_before"), "acc_after": s.get("acc_after")}
    if ev.returncode == 0 and (run_dir / "gpu_check_eval.json").is_file():
        out["evaluation"] = json.loads((run_dir / "gpu_check_eval.json").read_text())
    else:
        out["evaluation_error"] = (ev.stderr or ev.stdout).strip()[-2000:]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = OneLineArgumentParser(prog="llm_gpu_check.py", description=__doc__.split("\n\n")[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="default cuda")
    ap.add_argument("--model", default="smollm2", help="a conf_llm/model option (default smollm2)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per algorithm (default 5)")
    ap.add_argument("--eval-n", type=int, default=100, help="held-out problems of the evaluation (default 100)")
    ap.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS), help="default: all three")
    ap.add_argument("--workdir", default="runs/gpu_check", help="the runs (default runs/gpu_check)")
    ap.add_argument("--out", default=str(REPO / "results" / "llm" / "gpu_check.json"), help="the figures, JSON")
    ap.add_argument("overrides", nargs="*", help="ppo-bench-llm overrides for every run (key=value)")

    def body() -> int:
        a = ap.parse_args(argv)
        import torch

        if a.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is visible to torch here (run it on a GPU machine, "
                              "or --device cpu for the CPU path)")
        work = Path(a.workdir).resolve()
        out = {"command": "python scripts/llm_gpu_check.py " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
               "machine": machine(a.device), "model": a.model, "steps": a.steps, "algos": {}}
        print(f"{'algo':<6} {'s/step':>8} {'acc before':>11} {'acc after':>10} {'peak GPU MB':>12} {'peak RSS MB':>12}")
        for algo in a.algos:
            r = out["algos"][algo] = run_algo(algo, a, work)
            if "error" in r:
                print(f"{algo:<6} failed: {r['error'].splitlines()[-1] if r['error'] else 'no output'}")
                continue
            fmt = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
            print(f"{algo:<6} {fmt(r['seconds_per_step'], '8.2f')} {fmt(r['acc_before'], '11.3f')} "
                  f"{fmt(r['acc_after'], '10.3f')} {fmt(r['peak_gpu_mb'], '12.0f')} {fmt(r['peak_rss_mb'], '12.0f')}")
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {a.out}")
        return 1 if any("error" in r for r in out["algos"].values()) else 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
