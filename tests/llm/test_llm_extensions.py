"""An LM algorithm of one's own, from a package outside the repository (docs/llm.md, "Adding an algorithm"): the docs'
worked example, written as it stands into a temporary folder, trains through ``ppo-bench-llm``, resumes, and is
evaluated by ``ppo-bench-llm-eval``; nothing in ppo_bench is edited."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.extensions import import_extensions
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.common.tblog import read_scalars
from ppo_bench.llm.cli import extensions_in

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model=tiny", "task=reverse", "task.n_eval=4", "eval.every=0", "eval.batch_size=4", "eval.max_new_tokens=4",
        "algo.lr=3e-3", "save_model=false", "torch_threads=1", "progress=never", "checkpoint_every=2"]


def docs_example() -> dict[str, str]:
    """The code blocks of docs/llm.md whose first line names a file of the example package (``# my_lm_ext/sft.py``,
    as docs/extending.md marks its own), by file."""
    text = (ROOT / "docs" / "llm.md").read_text(encoding="utf-8")
    blocks = re.finditer(r"^```\w+\n# (my_lm_ext/[\w/.]+?)(?::[^\n]*)?\n(.*?)^```$", text, re.S | re.M)
    return {m.group(1): m.group(0).split("\n", 1)[1].rsplit("```", 1)[0] for m in blocks}


def run(args: list[str], package_root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)


def test_an_lm_algorithm_from_a_package_outside_the_repository(tmp_path):
    files = docs_example()
    assert set(files) == {"my_lm_ext/sft.py", "my_lm_ext/conf/algo/sft.yaml"}
    package_root = tmp_path / "outside"
    for name, text in files.items():
        (package_root / name).parent.mkdir(parents=True, exist_ok=True)
        (package_root / name).write_text(text, encoding="utf-8")
    assert ROOT not in package_root.parents
    runs = tmp_path / "runs"
    own = [f"hydra.searchpath=[file://{package_root / 'my_lm_ext' / 'conf'}]", "extensions=[my_lm_ext.sft]", "algo=sft"]

    first = run(["ppo_bench.llm.cli", *own, *TINY, f"run_root={runs}", "algo.steps=4"], package_root, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "4 SFT steps" in first.stdout, first.stdout
    run_dir = runs / "reverse-tiny" / "sft_lr0.003" / "seed0"
    identity = json.loads((run_dir / "identity.json").read_text())["config"]
    assert identity["algo.name"] == "sft" and identity["algo.batch_size"] == 8 and "extensions" not in identity

    # a larger algo.steps continues the run from its checkpoint, as for a built-in algorithm
    second = run(["ppo_bench.llm.cli", *own, *TINY, f"run_root={runs}", "algo.steps=6"], package_root, tmp_path)
    assert second.returncode == 0, second.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == "SFT" and summary["steps"] == 6 and summary["updates"] == 6
    loss = read_scalars(run_dir)["losses/sft"]
    assert list(loss.steps) == [1, 2, 3, 4, 5, 6] and loss.values[-1] < loss.values[0] - 0.3, loss.values

    # the evaluation reads the run's extensions from its config.yaml
    evaluation = run(["ppo_bench.llm.evaluate_run", str(run_dir), "--kl-samples", "1"], package_root, tmp_path)
    assert evaluation.returncode == 0, evaluation.stderr
    res = json.loads((run_dir / "evaluation.json").read_text())
    assert res["label"] == "SFT" and res["n_eval"] == 4 and res["perplexity"]["policy"] < res["perplexity"]["reference"]

    # without the extension imported its YAML names a schema nobody registered
    with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
        with pytest.raises(HydraException, match="Could not load 'algo/sft_schema'"):
            compose("config", overrides=[*own[:1], "algo=sft"])


def test_an_extension_that_cannot_be_imported_is_one_line():
    with pytest.raises(ConfigError, match=r"^extensions: no module named 'no_such_package.algos' \(is its package "
                                          r"installed, or its folder on PYTHONPATH\?\)$"):
        import_extensions(extensions_in(["model=tiny", "extensions=[no_such_package.algos]"]))
    assert extensions_in(["+extensions=[a.b,c]", "extensions=d", "algo=grpo"]) == ["a.b", "c", "d"]
