"""scripts/llm_gpu_check.py, the LM module's GPU check: its CPU path trains, evaluates and reports, and without a
CUDA device its default is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from scripts.llm_gpu_check import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible: the refusal does not apply")
def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "g.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda: no CUDA device") and err.count("\n") == 1
    assert not (tmp_path / "g.json").exists()


def test_the_cpu_path_trains_evaluates_and_reports(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["--device", "cpu", "--model", "tiny", "--steps", "2", "--eval-n", "8", "--algos", "dpo",
                 "--workdir", str(tmp_path / "runs"), "--out", str(out), "task.n_eval=8"]) == 0
    r = json.loads(out.read_text())
    assert set(r["algos"]) == {"dpo"} and r["machine"]["device"] == "cpu"  # (DPO: its per-step times have no total)
    for algo, fig in r["algos"].items():
        assert fig["steps"] == 2 and fig["seconds_per_step"] > 0 and fig["peak_rss_mb"] > 0, (algo, fig)
        assert fig["compute_dtype"] == "float32" and fig["peak_gpu_mb"] is None  # on the CPU
        assert fig["evaluation"]["n_eval"] == 8 and 0 <= fig["acc_after"] <= 1, fig
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:2] == ["algo", "s/step"] and printed.splitlines()[1].startswith("dpo ")
