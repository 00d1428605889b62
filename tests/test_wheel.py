"""The wheel works anywhere: it holds the config trees and the random policy's scores as files, and, installed into
a fresh virtual environment outside the checkout (torch first, as the Makefile does), it trains, reports, evaluates
and exports a run from another folder, and both command lines print their help and ppo-bench's version; the extras
the package names in its messages are declared in it.

The installation takes about a minute (torch's wheel is on the machine, the rest comes through pip's cache); pip is
told not to byte-compile what it installs, which would take longer than everything the test runs: the commands write
the bytecode of what they import, once, as a user's would (where PYTHONDONTWRITEBYTECODE is set, each command would
compile torch's modules afresh: two minutes of the test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH = os.environ.get("TORCH", "torch==2.13.0")  # the Makefile's pin
# what a user's checkout holds that is not source: left out of the copy the wheel is built from
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "outputs", "multirun", "runs", "site", "videos")
PACKAGE_DATA = {"conf": "ppo_bench/conf", "conf_llm": "ppo_bench/conf_llm",
                "results/random_scores.csv": "ppo_bench/data/random_scores.csv"}


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    """Run a command; its output, or a failure that shows the command and everything it printed."""
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}"
    return p.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of the checkout (links kept as links), so that the checkout gets no build/ folder."""
    src = tmp_path_factory.mktemp("source") / "ppo-bench"
    shutil.copytree(REPO, src, symlinks=True, ignore=NOT_SOURCE)
    assert (src / "ppo_bench" / "conf").is_symlink()  # what setuptools has to follow
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src], cwd=dist)
    (whl,) = dist.glob("ppo_bench-*.whl")
    return whl


def test_checkout_reaches_its_package_data_through_links():
    from ppo_bench.common import paths

    for source, packaged in PACKAGE_DATA.items():
        assert (REPO / packaged).is_symlink() and (REPO / packaged).resolve() == (REPO / source).resolve()
    assert paths.CONF_DIR.resolve() == REPO / "conf" and paths.RANDOM_SCORES.is_file()


def test_wheel_holds_configs_and_random_scores_as_files(wheel):
    with zipfile.ZipFile(wheel) as z:
        entries = {i.filename: i for i in z.infolist()}
        for source, packaged in PACKAGE_DATA.items():
            files = [REPO / source] if (REPO / source).is_file() else sorted(
                p for p in (REPO / source).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            assert files, source
            for f in files:
                name = packaged if f == REPO / source else f"{packaged}/{f.relative_to(REPO / source).as_posix()}"
                assert name in entries, f"{name} ({f.relative_to(REPO)}) is not in {wheel.name}"
                assert not stat.S_ISLNK(entries[name].external_attr >> 16), f"{name} is a link in the wheel"
                assert z.read(name) == f.read_bytes(), name


def test_wheel_declares_the_extras_the_package_asks_for(wheel):
    """Each extra that an error message tells a wheel user to install (``pip install 'ppo-bench[onnx]'``) is declared
    in the wheel with what the code imports for it; the installed test above installs only ``analysis``."""
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        lines = z.read(meta).decode().splitlines()
    extras = {line.split(": ", 1)[1] for line in lines if line.startswith("Provides-Extra: ")}
    requires = [line.split(": ", 1)[1] for line in lines if line.startswith("Requires-Dist: ")]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "ppo_bench").rglob("*.py"))
    asked = set(re.findall(r"pip install 'ppo-bench\[(\w+)\]'", source))
    assert asked and asked <= extras, asked - extras
    for extra, module in (("onnx", "onnxscript"), ("onnx", "onnxruntime"), ("analysis", "matplotlib"),
                          ("llm", "transformers"), ("llm", "gguf"), ("lora", "peft")):
        assert any(r.startswith(module) and f'extra == "{extra}"' in r for r in requires), (extra, module, requires)


def test_installed_wheel_works_from_another_folder(wheel, tmp_path):
    assert not tmp_path.resolve().is_relative_to(REPO)
    venv, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    run([sys.executable, "-m", "venv", venv], cwd=work)
    bin_ = venv / "bin"
    pip = [bin_ / "python", "-m", "pip", "install", "-q", "--no-compile"]
    run([*pip, TORCH], cwd=work)
    run([*pip, f"{wheel}[analysis]"], cwd=work)
    # bytecode written on first import, as in a user's venv: each of the commands below would otherwise compile torch
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HYDRA_FULL_ERROR", "PYTHONDONTWRITEBYTECODE")}
    env.update(PATH=f"{bin_}{os.pathsep}{env.get('PATH', '')}", MPLBACKEND="Agg", CI="1")

    where = run(["python", "-c", "import ppo_bench, torch; print(ppo_bench.__file__); print(torch.__version__)"],
                work, env).split()
    assert Path(where[0]).resolve().is_relative_to(venv.resolve()) and where[1].split("+")[0] == TORCH.split("==")[1]

    out = run(["ppo-bench", "env=inverted_pendulum", "total_timesteps=2048", "run_root=runs"], work, env)
    assert "InvertedPendulum-v5/clip_eps0.2/seed0  finished" in out, out
    run_dir = work / "runs" / "InvertedPendulum-v5" / "clip_eps0.2" / "seed0"

    # the experiment's grid (conf/experiment/table1_smoke.yaml) and the random policy's scores: package data
    out = run(["ppo-bench-report", "runs", "--experiment", "table1_smoke", "--reps", "100"], work, env)
    assert "1 finished runs of 12 expected" in out and (work / "runs" / "report" / "table1.md").is_file(), out

    out = run(["ppo-bench-eval", run_dir, "--episodes", "2", "--json", "eval.json"], work, env)
    (summary,) = json.loads((work / "eval.json").read_text())
    assert summary["episodes"] == 2 and summary["env"] == "InvertedPendulum-v5"
    # exported (TorchScript; the ONNX path, the same command with another suffix, is tests/test_export.py's)
    run(["ppo-bench-eval", run_dir, "--export", "policy.pt"], work, env)
    check = ("import numpy as np, torch\n"
             "from ppo_bench import load_policy\n"
             f"policy = load_policy({str(run_dir)!r})\n"
             "obs = np.random.default_rng(0).normal(size=(5, 4))\n"
             "a = torch.jit.load('policy.pt')(torch.as_tensor(obs, dtype=torch.float32)).numpy()\n"
             "np.testing.assert_allclose(a, policy.act(obs), rtol=1e-5, atol=1e-6)\n"
             "print(a.shape)\n")
    assert run(["python", "-c", check], work, env).strip() == "(5, 1)"

    version = wheel.name.split("-")[1]
    for command in (["ppo-bench"], ["python", "-m", "ppo_bench"], ["ppo-bench-llm"]):
        help_text = run([*command, "--help"], work, env)
        assert "== Configuration groups ==" in help_text and "algo: " in help_text, help_text  # the config tree
        assert run([*command, "--version"], work, env) == f"ppo-bench {version}\n"
    assert run(["ppo-bench-eval", "--version"], work, env) == f"ppo-bench {version}\n"


def test_a_missing_extra_is_named_as_a_wheel_user_installs_it(tmp_path, capsys, monkeypatch):
    from ppo_bench.analysis import report

    monkeypatch.setitem(sys.modules, "ppo_bench.analysis.sweep", None)  # as if matplotlib, pandas were missing
    assert report.main([str(tmp_path), "--by", "seed"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("; install the analysis extra: pip install 'ppo-bench[analysis]'\n") and err.count("\n") == 1
