"""The launching side of a Slurm sweep (ppo_bench/common/slurm.py) without a Slurm: ``sacct`` and ``squeue`` are
stand-ins on PATH that answer as Slurm 22.05 does without accounting. The same code against a real Slurm:
tests/cluster/."""

import os
import subprocess
import sys
import textwrap

import pytest
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from ppo_bench.common.slurm import NOT_LISTED, launch_failure_line, slurm_watcher_class


@pytest.fixture
def slurm_commands(tmp_path, monkeypatch):
    """sacct fails as it does without accounting; squeue prints what the test writes to ``answer(...)``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (bin_dir / "squeue").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$@" >> {tmp_path}/squeue.calls
        cat {tmp_path}/squeue.out
        cat {tmp_path}/squeue.err >&2
        exit $(cat {tmp_path}/squeue.rc)
        """))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def answer(out: str = "", err: str = "", rc: int = 0):
        (tmp_path / "squeue.out").write_text(out)
        (tmp_path / "squeue.err").write_text(err)
        (tmp_path / "squeue.rc").write_text(str(rc))

    answer.calls = lambda: (tmp_path / "squeue.calls").read_text().splitlines()
    return answer


def watcher(*jobs: str):
    w = slurm_watcher_class()(delay_s=600)
    for j in jobs:
        w.register_job(j)
    return w


def test_without_accounting_squeue_tells_which_jobs_ended(slurm_commands):
    slurm_commands("7_0|RUNNING|vm\n7_1|CANCELLED|vm\n7_2|CONFIGURING|vm\n7_3|PENDING|\n8|FAILED|vm\n")
    w = watcher("7_0", "7_1", "7_2", "7_3", "8")
    done = {j: w.is_done(j, mode="force") for j in ("7_0", "7_1", "7_2", "7_3", "8")}
    # CONFIGURING is a job starting (submitit's own watcher counts it as done)
    assert done == {"7_0": False, "7_1": True, "7_2": False, "7_3": False, "8": True}
    assert "--jobs=7,8" in slurm_commands.calls()[-1] and "--states=all" in slurm_commands.calls()[-1]


def test_a_job_slurm_forgot_has_ended_and_one_it_cannot_say_has_not(slurm_commands):
    slurm_commands(err="slurm_load_jobs error: Invalid job id specified", rc=1)
    w = watcher("9_0")
    assert w.is_done("9_0", mode="force") and w.get_state("9_0", mode="cache") == NOT_LISTED
    slurm_commands(err="slurm_load_jobs error: Unable to contact slurm controller (connect failure)", rc=1)
    w = watcher("10_0")
    assert not w.is_done("10_0", mode="force") and w.get_state("10_0", mode="cache") == "UNKNOWN"


def test_stock_watcher_never_sees_the_end_without_accounting(slurm_commands):
    """What the watcher is for: submitit's own keeps such a job UNKNOWN, and waits on it forever."""
    slurm_commands(err="slurm_load_jobs error: Invalid job id specified", rc=1)
    w = SlurmInfoWatcher(delay_s=600)
    w.register_job("9_0")
    assert not w.is_done("9_0", mode="force") and w.get_state("9_0", mode="cache") == "UNKNOWN"


def test_with_accounting_sacct_answers_alone(slurm_commands, tmp_path):
    (tmp_path / "bin/sacct").write_text("#!/bin/sh\nprintf 'JobID|State|NodeList\\n11_0|CANCELLED by 0|vm\\n'\n")
    slurm_commands(err="squeue must not be asked", rc=1)
    w = watcher("11_0")
    assert w.is_done("11_0", mode="force") and w.get_state("11_0", mode="cache") == "CANCELLED by 0"
    assert not (tmp_path / "squeue.calls").exists()


def test_a_job_that_ended_without_a_result_is_one_line_naming_it_and_its_log(slurm_commands, tmp_path, monkeypatch):
    """submitit's own report (its UncompletedJobError, raised by Job.result) made one line."""
    slurm_commands("12_3|CANCELLED|vm\n")
    monkeypatch.setattr(SlurmJob, "watcher", watcher())
    monkeypatch.setattr(SlurmJob, "_results_timeout_s", 0)
    job = SlurmJob(folder=tmp_path / "submitit/%j", job_id="12_3")
    job.paths.folder.mkdir(parents=True)
    job.paths.stderr.write_text("interrupted: stopped by SIGTERM after an iteration; every run checkpointed\n")
    with pytest.raises(Exception) as caught:
        job.result()
    line = launch_failure_line(caught.value)
    assert line == (f"Slurm job 12_3 ended without a result (state CANCELLED); its log: {job.paths.stderr}; "
                    "the sweep's other jobs go on; relaunching the same command continues every run")


def test_other_errors_are_not_launch_failures():
    assert launch_failure_line(ValueError("Job 1 (task: 0) with path x_result.pkl")) is None


@pytest.mark.parametrize("command", [["ppo_bench", "env=cartpole", "resume=false"],
                                     ["ppo_bench.llm.cli", "model=tiny", "resume=false"]], ids=["ppo-bench", "ppo-bench-llm"])
def test_submitit_slurm_launch_with_resume_false_is_refused_before_submitting(tmp_path, command):
    """Both training commands carry the callback (their conf/ and conf_llm/ config.yaml)."""
    module, *overrides = command
    r = subprocess.run([sys.executable, "-m", module, "-m", "hydra/launcher=submitit_slurm", *overrides,
                        f"run_root={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/multirun"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: hydra/launcher=submitit_slurm needs resume=auto (or true): a job that Slurm or submitit requeues "
        "(time limit, preemption) must continue its runs from their checkpoints"]
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "runs").exists()
