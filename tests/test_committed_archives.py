"""The archives of finished runs committed under results/ (written by ppo-bench 0.1, PPO's settings then under
ppo.*) still carry to today's sweeps: unpacked, every run of every job of the experiment is found finished with
the identity today's config gives it, so relaunching the experiment would skip it and retrain nothing."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ppo_bench.analysis.archive import unpack
from ppo_bench.common.atomic import read_json
from ppo_bench.common.paths import CONF_DIR
from ppo_bench.rl.engine.trainer import STATUS, check_run_identity
from ppo_bench.rl.launch import population_specs

REPO = Path(__file__).resolve().parent.parent


def sweep_jobs(experiment: str, run_root: Path):
    """The composed config of every job of the experiment's sweep (the product of its sweeper params)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        base = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        params = {k: str(v).split(",") for k, v in base.hydra.sweeper.params.items()}
        for values in itertools.product(*params.values()):
            overrides = [f"experiment={experiment}", f"run_root={run_root}", "compile=false",
                         *(f"{k}={v}" for k, v in zip(params, values))]
            yield compose("config", overrides=overrides)


@pytest.mark.parametrize("archive, experiment, runs", [("table1_runs", "table1", 231), ("figure3_runs", "figure3", 126)])
def test_a_committed_archive_is_skipped_by_todays_sweep(tmp_path, archive, experiment, runs):
    unpacked = unpack(REPO / "results" / archive, tmp_path / "runs", events=False)  # the sweep reads no events
    assert sum(unpacked.values()) == runs
    checked = 0
    for cfg in sweep_jobs(experiment, tmp_path / "runs"):
        per_iter = cfg.env.num_envs * cfg.algo.num_steps
        needed = -(-cfg.total_timesteps // per_iter) * per_iter
        for spec in population_specs(cfg):
            status = read_json(spec.dir / STATUS)
            assert status and status["status"] == "finished" and status["global_step"] >= needed, spec.name
            assert "\nppo:\n" in (spec.dir / "config.yaml").read_text()  # written by ppo-bench 0.1
            check_run_identity(cfg, spec)  # today's keys, the run's migrated ones: the same run
            checked += 1
    assert checked == runs


def without_paths(text: str, *paths: str) -> str:
    """A report's text less the lines that name where it was read from or written to (its command line)."""
    return "\n".join(line for line in text.splitlines() if not any(p in line for p in paths))


@pytest.mark.parametrize("archive, experiment, outputs, extra", [
    ("table1_runs", "table1", ["table1.md", "table1.csv"],
     ["--variant", "annealed step size={results}/table1_annealed/table1.csv"]),
    ("figure3_runs", "figure3", ["figure3.md"], []),
])
def test_a_committed_archive_regenerates_its_report(tmp_path, archive, experiment, outputs, extra):
    """Unpacked, the archive gives the committed report again, identical but for the lines naming paths."""
    from ppo_bench.analysis.report import main

    runs = tmp_path / "runs"
    unpack(REPO / "results" / archive, runs)
    out = tmp_path / "out"
    args = [str(runs), "--experiment", experiment, "--out-dir", str(out),
            *(a.format(results=REPO / "results") for a in extra)]
    assert main(args) == 0
    for name in outputs:
        committed, regenerated = (REPO / "results" / name).read_text(), (out / name).read_text()
        paths = (str(tmp_path), str(REPO), "runs/", "results/")  # the same filter on both sides
        assert without_paths(regenerated, *paths) == without_paths(committed, *paths), name
