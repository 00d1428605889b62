"""A run folder's guards (ppo_bench.common.run_folder): one process at a time, the previous checkpoint kept and
used when the last is damaged, checkpoints read as data only, a fresh start clearing a dead process's
files, files readable by the group, a damaged status file read as absent."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from ppo_bench.common.atomic import atomic_torch_save, atomic_write_text, read_json
from ppo_bench.rl.launch import train_from_config
from ppo_bench.common.errors import ConfigError
from scripts.fault_drill import snapshot
from ppo_bench.common.run_folder import CHECKPOINT, PREVIOUS, RunLocks, load_last_good, save_checkpoint

TINY = ["env=inverted_pendulum", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=1",
        "total_timesteps=128", "checkpoint_every=1", "population.seeds=[0,1]"]
RUN = "InvertedPendulum-v5/clip_eps0.2/seed{}"


def test_a_second_process_on_a_run_folder_is_refused_naming_the_holder(tmp_path, make_cfg):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ppo_bench.common.run_folder import RunLocks;"
                               f"l = RunLocks([{str(tmp_path / 'runs' / RUN.format(1))!r}]).acquire();"
                               "print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"is in use by process {holder.pid} on ") as e:
            train_from_config(make_cfg(*TINY))
        assert "\n" not in str(e.value)
        assert not (tmp_path / "runs" / RUN.format(0) / CHECKPOINT).exists()  # nothing trained
    finally:
        holder.kill()
        holder.wait()
    # the lock died with its process
    assert all(s["status"] == "finished" for s in train_from_config(make_cfg(*TINY)).values())
    with RunLocks([tmp_path / "x"]):
        with pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"):
            RunLocks([tmp_path / "x"]).acquire()
    RunLocks([tmp_path / "x"]).acquire().release()


def test_a_damaged_checkpoint_falls_back_to_the_previous_one_or_names_its_file(tmp_path, make_cfg, capsys):
    train_from_config(make_cfg(*TINY))
    bad = tmp_path / "runs" / RUN.format(1)
    assert (bad / PREVIOUS).exists()
    os.truncate(bad / CHECKPOINT, 600)
    out = train_from_config(make_cfg(*TINY, "resume=true", "total_timesteps=192"))
    assert capsys.readouterr().err.count("\n") == 1  # one warning line
    assert all(s["status"] == "finished" and s["global_step"] == 192 for s in out.values())
    assert (bad / "checkpoint.corrupt.pt").exists()  # set aside, not rotated over the good previous one

    # both damaged: one line naming the file, and the healthy run is not touched (no event file, no config)
    os.truncate(bad / CHECKPOINT, 600)
    os.truncate(bad / PREVIOUS, 600)
    healthy = snapshot(tmp_path / "runs" / RUN.format(0), skip=(".lock",))
    with pytest.raises(ConfigError, match=f"checkpoint {bad / CHECKPOINT} is unreadable") as e:
        train_from_config(make_cfg(*TINY, "resume=true", "total_timesteps=256"))
    assert "\n" not in str(e.value)
    assert snapshot(tmp_path / "runs" / RUN.format(0), skip=(".lock",)) == healthy


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoints_are_loaded_as_data_only(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": torch.zeros(2), "x": Payload()}, run / CHECKPOINT)
    with pytest.raises(ConfigError, match="holds objects other than tensors, NumPy arrays and plain data"):
        load_last_good(run)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    # what a run saves (NumPy converted to tensors) loads back
    save_checkpoint({"a": torch.ones(3), "n": 3, "s": {"k": [1.5, None, "x"]}}, run)
    state, path = load_last_good(run)
    assert path == run / CHECKPOINT and state["n"] == 3 and state["s"] == {"k": [1.5, None, "x"]}
    # an older ppo-bench's checkpoint, with NumPy arrays in it, still loads (as data)
    torch.save({"obs": np.arange(3.0), "done": np.zeros(2, dtype=bool), "x": np.float64(2.5)}, run / CHECKPOINT)
    state, _ = load_last_good(run)
    assert np.array_equal(state["obs"], np.arange(3.0)) and state["done"].dtype == bool and state["x"] == 2.5


def test_a_pure_python_env_resumes_from_plain_data(tmp_path, make_cfg):
    cp = ["env=cartpole", *TINY[1:]]
    straight = train_from_config(make_cfg(*cp, "total_timesteps=256", f"run_root={tmp_path}/a"))
    train_from_config(make_cfg(*cp, f"run_root={tmp_path}/b"))
    train_from_config(make_cfg(*cp, "total_timesteps=256", "resume=true", f"run_root={tmp_path}/b"))
    for name in straight:
        a, _ = load_last_good(tmp_path / "a" / name)
        b, _ = load_last_good(tmp_path / "b" / name)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert "attributes" in b["envs"][0] and "pickled" not in b["envs"][0]


def test_a_fresh_start_clears_a_dead_process_files_and_files_are_group_readable(tmp_path, make_cfg):
    """What a process killed before its first checkpoint leaves — the identity and config it wrote first, its event
    files — is cleared by the same command again; nothing else is (tests/test_launch_guarantees.py)."""
    train_from_config(make_cfg(*TINY))
    run = tmp_path / "runs" / RUN.format(0)
    for name in (CHECKPOINT, PREVIOUS, "status.json"):
        for seed in (0, 1):
            (tmp_path / "runs" / RUN.format(seed) / name).unlink(missing_ok=True)
    (run / "events.out.tfevents.1.dead.1").write_bytes(b"stale")
    old = os.umask(0o002)
    try:
        train_from_config(make_cfg(*TINY))
    finally:
        os.umask(old)
    assert not (run / "events.out.tfevents.1.dead.1").exists()
    for name in (CHECKPOINT, "status.json", "config.yaml", "identity.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o664, name


def test_a_resumed_run_event_file_sorts_after_the_killed_one(tmp_path):
    """TensorBoard reads a run's event files in name order; one created in the same second as an earlier one
    would be ordered by its counter ('…10' before '…9') and the purge on resume would miss the old events."""
    import time

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ppo_bench.common.tblog import RunLogger

    old = RunLogger(tmp_path)
    for step in (1, 2, 3):
        old.scalars({"x": float(step)}, step)
    old.close()
    (name,) = [p.name for p in tmp_path.glob("events.out.tfevents.*")]
    later = name.split(".")
    later[3], later[-1] = str(int(time.time()) + 1), "9"  # as if made within the next second, by counter 9
    (tmp_path / name).rename(tmp_path / ".".join(later))
    new = RunLogger(tmp_path, purge_after=1)  # resumed from the checkpoint of step 1
    new.scalars({"x": 20.0}, 2)
    new.close()
    files = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert files[0] == ".".join(later)  # the new file sorts last
    assert [(e.step, e.value) for e in EventAccumulator(str(tmp_path)).Reload().Scalars("x")] == [(1, 1.0), (2, 20.0)]


def test_read_json_takes_a_missing_or_damaged_file_as_absent(tmp_path, capsys):
    f = tmp_path / "status.json"
    assert read_json(f) is None and capsys.readouterr().err == ""  # missing: silent
    atomic_write_text(f, json.dumps({"status": "finished", "global_step": 3}))
    assert read_json(f) == {"status": "finished", "global_step": 3}
    for damage in ('{"status": "fini', "[1, 2]", b"\xff\xfe{}"):
        f.write_bytes(damage if isinstance(damage, bytes) else damage.encode())
        assert read_json(f) is None
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"warning: {f} ") and err.rstrip().endswith("ignored")


def test_a_finished_run_whose_status_is_damaged_resumes_from_its_checkpoint_and_reports(tmp_path, make_cfg, capsys):
    from ppo_bench.analysis.runs import load_run
    from ppo_bench.analysis.sweep import load_sweep_run

    train_from_config(make_cfg(*TINY))
    bad = tmp_path / "runs" / RUN.format(1)
    (bad / "status.json").write_text('{"status": "finished", "glo')  # damaged from outside
    capsys.readouterr()
    # the reports name it damaged and score it nowhere, in warning lines, not a traceback
    table1_run, sweep_run = load_run(bad), load_sweep_run(bad, [])
    assert table1_run.status == sweep_run.status == "damaged"
    assert "status.json is damaged" in table1_run.error
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert all(ln.startswith("warning: ") for ln in lines)
    assert sum("status.json is unreadable" in ln for ln in lines) == 1  # named once, however often it is read
    assert sum("is damaged, not scored" in ln for ln in lines) == 2  # by each report's reader
    out = train_from_config(make_cfg(*TINY, "resume=true"))
    assert {n: s["status"] for n, s in out.items()} == {RUN.format(0): "finished (skipped)", RUN.format(1): "finished"}
    assert read_json(bad / "status.json")["global_step"] == 128  # its checkpoint was at the end: nothing retrained
    assert load_run(bad).status == "finished"


def test_a_checkpoint_is_streamed_to_disk_not_copied_in_memory(tmp_path):
    # in a fresh process, so that the high-water mark is this save's: 400 MB of tensors must not add 400 MB more
    code = f"""
import torch
from ppo_bench.common.atomic import atomic_torch_save
from ppo_bench.common.machine import peak_rss_mb
state = {{"w": torch.ones(100_000_000)}}
before = peak_rss_mb()
atomic_torch_save(state, {str(tmp_path / 'c.pt')!r})
print(peak_rss_mb() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    assert float(out) < 100, out  # through a bytes buffer and its copy: ~800 MB
    assert torch.load(tmp_path / "c.pt", weights_only=True)["w"].shape == (100_000_000,)


def test_a_full_disk_during_a_checkpoint_is_the_disk_error_and_leaves_the_old_file(tmp_path, monkeypatch):
    import errno
    import io

    import ppo_bench.common.atomic as atomic

    target = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.zeros(3)}, target)
    old = target.read_bytes()
    real_fdopen = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, f):
            self.f, self.n = f, 0

        def writable(self):
            return True

        def write(self, b):
            self.n += len(b)
            if self.n > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(b)

        def fileno(self):
            return self.f.fileno()

        def close(self):
            self.f.close()
            super().close()

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as e:
        atomic_torch_save({"w": torch.zeros(100_000)}, target)
    assert e.value.errno == errno.ENOSPC  # the disk's error, for the one-line message, not torch's RuntimeError
    assert target.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
