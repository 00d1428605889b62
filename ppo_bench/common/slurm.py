"""A sweep on Slurm through ``hydra/launcher=submitit_slurm`` (docs/cluster.md), from the launching side.

submitit learns a job's state from ``sacct`` alone. Without Slurm's accounting (no ``slurmdbd``) sacct has
nothing to say, every job stays ``UNKNOWN``, and a job that ends without a result — cancelled, killed by the
kernel, its node lost — leaves the launcher polling forever. ``SlurmStateWatcher`` asks ``squeue`` where sacct
cannot answer: a job squeue lists in a final state, or no longer lists at all, has ended, and submitit then
fails the launch on it (after waiting ``_results_timeout_s``, 15 s, for a result file). With accounting,
nothing changes. Either way the launcher looks at its jobs at growing intervals: half the time since the last
job was submitted, at most submitit's 10 minutes.

``WatchSlurmJobs`` is a Hydra callback (conf/config.yaml, ``hydra.callbacks``): before a multirun through
submitit's Slurm launcher it installs that watcher, and refuses ``resume=false``, with which a requeued job
(time limit, preemption, ``scontrol requeue``) would refuse its own checkpoints instead of continuing them.
``launch_failure_line`` makes submitit's report of a job that ended without a result one line naming the job
and its log.
"""

from __future__ import annotations

import functools
import re
import subprocess
import time
from typing import Any

from hydra.experimental.callback import Callback

from ppo_bench.common.errors import ConfigError

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
NOT_LISTED = "ENDED"  # what a job that squeue no longer lists is reported as (not a Slurm state: Slurm forgot it)
# a job in one of these states will not run again. submitit counts every state but PENDING, RUNNING, REQUEUED,
# COMPLETING, PREEMPTED, READY and UNKNOWN as done, squeue's passing ones too (CONFIGURING, SUSPENDED, ...)
FINAL_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                "TIMEOUT", NOT_LISTED}


@functools.cache
def slurm_watcher_class() -> type:
    """``SlurmStateWatcher``, made on first use: importing submitit costs every other command 0.3 s."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SlurmStateWatcher(SlurmInfoWatcher):
        """submitit's Slurm watcher, asking ``squeue`` for the jobs' states when ``sacct`` cannot answer."""

        def update(self) -> None:  # submitit's update, with squeue where sacct fails
            command = self._make_command()
            if command is None:
                return
            self._num_calls += 1
            try:
                self._output = subprocess.check_output(command, stderr=subprocess.PIPE, timeout=60)
                info = self.read_info(self._output)
            except (OSError, subprocess.SubprocessError):
                info = self.squeue_states()
            self._info_dict.update(info)
            self._last_status_check = time.time()
            for job_id in self._registered - self._finished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

        def squeue_states(self) -> dict[str, dict[str, str]]:
            unfinished = self._registered - self._finished
            main_ids = sorted({x.split("_")[0] for x in unfinished})
            command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%N",
                       "--jobs=" + ",".join(main_ids)]
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.SubprocessError):
                return {}  # slurmctld did not answer either: states stay unknown, asked again later
            if out.returncode != 0 and "Invalid job id" not in out.stderr:
                return {}
            info = self.read_info("JobID|State|NodeList\n" + out.stdout) if out.returncode == 0 else {}
            for job_id in unfinished:
                if job_id not in info:  # slurmctld forgot it (MinJobAge after its end): it has ended
                    info[job_id] = {"JobID": job_id, "State": NOT_LISTED, "NodeList": ""}
            return info

        def is_done(self, job_id: str, mode: str = "standard") -> bool:
            return self.get_state(job_id, mode=mode).split(" ")[0].upper() in FINAL_STATES  # sacct: "CANCELLED by 0"

    return SlurmStateWatcher


def watch_slurm_jobs() -> None:
    """Every Slurm job submitit creates from now on in this process is watched by ``SlurmStateWatcher``."""
    from submitit.slurm.slurm import SlurmJob

    if not isinstance(SlurmJob.watcher, slurm_watcher_class()):
        SlurmJob.watcher = slurm_watcher_class()(delay_s=SlurmJob.watcher._delay_s)


class WatchSlurmJobs(Callback):
    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if config.hydra.launcher.get("_target_") != SLURM_LAUNCHER:
            return
        if config.get("resume", "auto") is False:
            from ppo_bench.common.hydra_cli import exit_on_user_error  # (it imports this module)

            # one line and exit code 2 here: Hydra turns a callback's exception into a warning and goes on
            exit_on_user_error(ConfigError(
                "hydra/launcher=submitit_slurm needs resume=auto (or true): a job that Slurm or submitit requeues "
                "(time limit, preemption) must continue its runs from their checkpoints"))
        watch_slurm_jobs()


def launch_failure_line(ex: BaseException) -> str | None:
    """One line for submitit's report of a Slurm job that ended without a result (``UncompletedJobError``) or whose
    launcher-side call raised (``FailedJobError``, e.g. 'timed-out too many times'): the job, what is known of its
    end, and its log. None for anything else."""
    try:
        from submitit.core.utils import FailedJobError, UncompletedJobError
    except ImportError:
        return None
    text = str(ex)
    after = "the sweep's other jobs go on; relaunching the same command continues every run"
    if isinstance(ex, UncompletedJobError):
        if text.startswith("Job not requeued because"):  # submitit's handler, in the job: a time limit too many
            return (f"a Slurm job stopped without being requeued: {_first_line(text)[len('Job not requeued because: '):]}"
                    f" (hydra.launcher.max_num_timeout); its runs are checkpointed: relaunching the same command "
                    f"continues every run")
        m = re.search(r"Job (\S+) \(task: \S+\) with path (\S+)_result\.pkl\s+has not produced any output "
                      r"\(state: ([^)]*)\)", text)
        if m:
            job, stem, state = m.groups()
            return f"Slurm job {job} ended without a result (state {state}); its log: {stem}_log.err; {after}"
        return f"a Slurm job ended without a result: {_first_line(text)}; {after}"
    if isinstance(ex, FailedJobError):
        trace = text.split("-" * 22)
        last = _last_line(trace[1]) if len(trace) > 2 else _first_line(text)
        log = re.search(r"paths:\s+- (\S+)", text)
        job = re.search(r"/([^/\s]+)_\d+_log\.err", log.group(1)) if log else None
        where = f"; its log: {log.group(1)}" if log else ""
        return f"Slurm job {job.group(1) if job else '?'} failed: {last}{where}; {after}"
    return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
