"""The cluster path on a real Slurm (docs/cluster.md): ``ppo-bench -m ... hydra/launcher=submitit_slurm``.

Each run is checked against an independent reference: the same run trained without interruption, in this
process or through joblib. A run's legs are its TensorBoard event files (each process that trains it writes
one); the steps a leg logged are the iterations it trained, so "no redone work" means no step is logged by
two legs, and each leg starts right after the step where the previous one stopped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from ppo_bench.common.paths import CONF_DIR
from ppo_bench.common.tblog import event_files, read_scalars
from ppo_bench.rl.launch import train_from_config
from ppo_bench.rl.engine.trainer import TIMING_KEYS

T = 256  # experiment=table1_smoke's rollout: 256 steps an iteration (about 0.15 s on one core)
RUN = "InvertedPendulum-v5/clip_eps0.2/seed0"
SHORT, LONG = 32 * T, 360 * T  # ~5 s of training; ~50 s (the time-limit test says why)


def one_run(steps: int) -> list[str]:
    """The smoke experiment cut to one run of `steps` steps, checkpointed only when stopped and at its end.
    (The one place these tests name a training key.)"""
    return ["experiment=table1_smoke", "env=inverted_pendulum", "population.seeds=[0]",
            "population.objectives=[{name:clip,eps:0.2}]", f"total_timesteps={steps}", "checkpoint_every=1000"]


def on_slurm(*extra: str, timeout_min: int = 15) -> list[str]:
    """submitit counts a SIGUSR2 in a job's first min(80%, limit - 10 min) as a preemption, later ones as its time
    limit (one of max_num_timeout, 0 by default); 15 minutes: a preemption."""
    return ["hydra/launcher=submitit_slurm", f"hydra.launcher.timeout_min={timeout_min}",
            "hydra.launcher.cpus_per_task=1", *extra]


def reference(root: Path, steps: int) -> Path:
    """The run trained in one go, in this process: what every interrupted run must end as, bit for bit."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*one_run(steps), f"run_root={root}", "progress=never"])
    train_from_config(cfg)
    return root / RUN


@pytest.fixture(scope="module")
def short_reference(tmp_path_factory):
    return reference(tmp_path_factory.mktemp("reference_short"), SHORT)


class Launch:
    """``python -m ppo_bench -m <overrides>`` in its own folder, in the background."""

    def __init__(self, folder: Path, overrides: list[str]):
        self.folder, self.overrides = folder, overrides
        self.log = folder / f"launch{len(list(folder.glob('launch*.log')))}.log"
        self.started = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "ppo_bench", "-m", *overrides], cwd=folder,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT, text=True)

    @property
    def run_dir(self) -> Path:
        return self.folder / "runs/table1_smoke" / RUN

    def job_id(self, timeout: float = 120) -> str:
        """The Slurm job of the launch (a sweep of one job is one job, ``<id>``; of several, an array of tasks
        ``<id>_<index>``), once submitted: submitit's folder for it holds the pickled call."""
        until = time.time() + timeout
        while time.time() < until:
            jobs = [p.parent.name for p in (self.folder / "multirun/table1_smoke/.submitit").glob("*/*_submitted.pkl")]
            if jobs:
                return max(jobs)
            self.check_alive()
            time.sleep(0.2)
        raise AssertionError(f"no job submitted in {timeout} s: {self.output()}")

    def wait_for_iterations(self, count: int, timeout: float = 300) -> Path:
        """Wait until the newest leg of the run has logged `count` iterations; returns its event file."""
        until = time.time() + timeout
        while time.time() < until:
            files = event_files(self.run_dir) if self.run_dir.is_dir() else []
            if files and len(logged_steps(files[-1])) >= count:
                return files[-1]
            self.check_alive()
            time.sleep(0.1)
        raise AssertionError(f"the run logged no {count} iterations in {timeout} s: {self.output()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the launch ended early (exit code {self.proc.returncode}): {self.output()}")

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the launch did not end in {timeout} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text()[-3000:]


def job_log(folder: Path, job: str) -> str:
    return "".join(p.read_text() for p in (folder / "multirun/table1_smoke/.submitit" / job).glob("*_log.*"))


def logged_steps(event_file: Path) -> list[int]:
    """The steps of the iterations one process logged (each iteration logs perf/sps once)."""
    points = read_scalars(event_file, ["perf/sps"]).get("perf/sps")
    return [] if points is None else points.steps.tolist()


def legs(run_dir: Path) -> list[list[int]]:
    """The steps each process that trained the run logged, in order (one event file each)."""
    return [logged_steps(f) for f in event_files(run_dir)]


def redone_iterations(steps_by_leg: list[list[int]]) -> int:
    steps = [s for leg in steps_by_leg for s in leg]
    return len(steps) - len(set(steps))


def assert_resumed_where_stopped(steps_by_leg: list[list[int]], total: int, interrupted: Path | None = None) -> None:
    """Every leg starts at the iteration after the last one logged before it: nothing trained twice, nothing
    skipped, and the whole run trained. `interrupted`: the event file of a leg seen training before it was
    interrupted; a run that started over from nothing deletes it (and trains those iterations again)."""
    if interrupted is not None:
        assert interrupted.exists(), "the run started over: the leg interrupted while training is gone"
    print(f"\nlegs (first step, last step, iterations): {[(leg[0], leg[-1], len(leg)) if leg else () for leg in steps_by_leg]}"
          f"; iterations trained twice: {redone_iterations(steps_by_leg)}")
    trained = [leg for leg in steps_by_leg if leg]
    assert len(trained) >= 2, f"the run was not interrupted while training: {steps_by_leg}"
    for before, after in zip(trained, trained[1:]):
        assert after[0] == before[-1] + T, f"a leg resumed at step {after[0]} after one stopped at {before[-1]}"
    assert redone_iterations(steps_by_leg) == 0
    assert [s for leg in trained for s in leg] == list(range(T, total + 1, T))


def plain(x):
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = np.shape(a) == np.shape(b) and np.array_equal(a, b, equal_nan=True)
        return [] if same else [where]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit for bit the same trained run: the final checkpoint (parameters, optimiser, normalisers, the environments'
    states, the last 100 episodes) but for its wall time, and every episode's return as TensorBoard shows it."""
    ca, cb = (plain(torch.load(d / "checkpoint.pt", weights_only=True)) for d in (a, b))
    for k in TIMING_KEYS:
        ca.pop(k), cb.pop(k)
    assert differences(ca, cb) == []
    ra, rb = (read_scalars(d, ["charts/episodic_return"])["charts/episodic_return"] for d in (a, b))
    assert np.array_equal(ra.steps, rb.steps) and np.array_equal(ra.values, rb.values)
    sa, sb = (json.loads((d / "status.json").read_text()) for d in (a, b))
    assert sa["status"] == sb["status"] == "finished" and sa["score_last100"] == sb["score_last100"]


def test_smoke_sweep_on_slurm_scores_as_through_joblib(tmp_path):
    (tmp_path / "slurm").mkdir(), (tmp_path / "joblib").mkdir()
    slurm = Launch(tmp_path / "slurm", ["experiment=table1_smoke", *on_slurm()])
    joblib = Launch(tmp_path / "joblib", ["experiment=table1_smoke", "hydra.launcher.n_jobs=2"])
    assert joblib.wait() == 0, joblib.output()
    assert slurm.wait() == 0, slurm.output()
    tasks = list((tmp_path / "slurm/multirun/table1_smoke/.submitit").glob("*_*/*_result.pkl"))
    assert len(tasks) == 2  # one Slurm job (an array task) per environment
    runs = sorted(p.parent.relative_to(tmp_path / "joblib/runs") for p in (tmp_path / "joblib/runs").rglob("status.json"))
    assert len(runs) == 12  # 2 environments x 3 settings x 2 seeds
    for run in runs:
        assert_same_run(tmp_path / "joblib/runs" / run, tmp_path / "slurm/runs" / run)


@pytest.mark.parametrize("interrupt", ["scancel --signal=USR2", "scontrol requeue"])
def test_preempted_or_requeued_job_resumes_bit_identical_with_no_redone_work(tmp_path, short_reference, interrupt):
    """A preemption as submitit handles it (SIGUSR2: its handler requeues the job) and a requeue by Slurm
    (SIGTERM, then Slurm requeues): the run checkpoints at the end of the iteration it was in."""
    launch = Launch(tmp_path, [*one_run(SHORT), *on_slurm()])
    job = launch.job_id()
    first_leg = launch.wait_for_iterations(1)
    subprocess.run([*interrupt.split(), job], check=True, timeout=60)
    assert launch.wait() == 0, launch.output()
    assert_resumed_where_stopped(legs(launch.run_dir), SHORT, first_leg)
    assert_same_run(short_reference, launch.run_dir)
    log = job_log(tmp_path, job)
    assert "every run checkpointed" in log
    if "USR2" in interrupt:
        assert re.search(r"Requeued job \S+ \(\d+ remaining timeouts\)", log)  # submitit's handler did requeue it


def test_time_limit_requeues_and_resumes_bit_identical_with_no_redone_work(tmp_path_factory):
    """Slurm signals SIGUSR2 `signal_delay_s` before a job's time limit, at the first of its checks of time limits
    (every 30 s) that is less than 30 s before then: with a 1-minute limit and a 10 s delay, 20 to 50 s after the
    job starts, when submitit's handler is surely installed (a SIGUSR2 before it kills the job), and 60 s after
    the previous check for a requeued job (which starts again 11+ s after it). A run that trains longer than 50 s
    is cut at least once while training; each cut is requeued by submitit (a timeout, of max_num_timeout) and
    resumes at the iteration after the last one trained."""
    folder = tmp_path_factory.mktemp("time_limit")
    launch = Launch(folder, [*one_run(LONG), *on_slurm("hydra.launcher.signal_delay_s=10",
                                                       "hydra.launcher.max_num_timeout=10", timeout_min=1)])
    job = launch.job_id()
    launch.wait_for_iterations(1)  # started: the reference trains meanwhile on the other core, not before
    ref = reference(tmp_path_factory.mktemp("reference_long"), LONG)
    assert launch.wait() == 0, launch.output()
    assert_resumed_where_stopped(legs(launch.run_dir), LONG)
    assert_same_run(ref, launch.run_dir)
    log = job_log(folder, job)
    assert "this job is timed-out" in log and "every run checkpointed" in log


def test_a_job_that_dies_unrequeued_fails_the_launch_in_bounded_time_and_a_relaunch_continues(tmp_path,
                                                                                            short_reference):
    """`scancel` ends the job (SIGTERM: the run checkpoints) and Slurm does not requeue it. With or without
    accounting, the launch fails within half the job's age plus submitit's 15 s wait for a result, in one line
    naming the job and its log; launching the same command again finishes the run, bit-identical."""
    overrides = [*one_run(SHORT), *on_slurm()]
    launch = Launch(tmp_path, overrides)
    job = launch.job_id()
    first_leg = launch.wait_for_iterations(1)
    cancelled = time.time()
    subprocess.run(["scancel", job], check=True, timeout=60)
    assert launch.wait(timeout=120) == 1, launch.output()
    took, age = time.time() - cancelled, cancelled - launch.started
    lines = [line for line in launch.output().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and not launch.output().count("Traceback"), launch.output()
    assert re.fullmatch(rf"error: Slurm job {job} ended without a result \(state CANCELLED[^)]*\); its log: "
                        rf"\S+/{job}_0_log\.err; .*", lines[0]), lines[0]
    assert took < max(2.0, age / 2) + 15 + 15, f"the launch failed {took:.0f} s after the job ended"
    print(f"\nlaunch failed {took:.1f} s after scancel (job age {age:.1f} s)")

    relaunch = Launch(tmp_path, overrides)
    assert relaunch.wait() == 0, relaunch.output()
    assert_resumed_where_stopped(legs(launch.run_dir), SHORT, first_leg)
    assert_same_run(short_reference, launch.run_dir)
