"""The reference-run results files are regenerated from a run folder alone (here a tiny run)."""

import json
import subprocess
import sys
from pathlib import Path

from ppo_bench.analysis.llm_plots import moving_average, plot_llm_run, read_scalars
from ppo_bench.llm.launch import build_trainer

ROOT = Path(__file__).resolve().parents[2]


def test_results_json_and_png_from_a_run_folder(llm_cfg, tmp_path):
    cfg = llm_cfg("model=tiny", "task.n_eval=6", "eval.every=2", "eval.periodic_n=3", "eval.max_new_tokens=4",
                  "algo.max_completion_length=4", "algo.steps=4", "algo.lr=1e-3", "save_model=false")
    trainer = build_trainer(cfg)
    trainer.train()
    scalars = read_scalars(trainer.run_dir)
    assert [s for s, _ in scalars["eval/accuracy"]] == [0, 2, 4] and [v for _, v in scalars["eval/n"]] == [6, 3, 6]
    png = plot_llm_run(trainer.run_dir, tmp_path / "curve.png", title="tiny")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = tmp_path / "results"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "llm_grpo_addition.py"), "--from-run", str(trainer.run_dir),
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "grpo_addition.json").read_text())
    for key in ("model", "task", "steps", "wall_s", "n_eval", "acc_before", "acc_after", "config"):
        assert key in res, key
    assert res["steps"] == 4 and res["n_eval"] == 6
    assert set(res["benchmark"]["seconds_per_step"]) >= {"generation", "reference_and_old_logprobs", "update"}
    assert (out / "grpo_addition.png").stat().st_size > 1000


def test_moving_average():
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
