"""Waits, names and leftovers that misled (issue class 6 and 7): no wait on a clock (a resumed run's event file
sorts after the killed process's whatever time that file's name bears); a setting or run folder named twice in one
launch is refused in one line naming it; run-folder names that two different values never share; SIGHUP stops
a run like SIGTERM, checkpointed; what a kill -9 left mid-write is cleaned up by the next process; ppo-bench-eval
finds a run that has only its previous checkpoint."""

import os
import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.preemption import Interrupted, StopRequest
from ppo_bench.common.run_folder import CHECKPOINT, NEW, PREVIOUS, RunLocks
from ppo_bench.common.tblog import RunLogger, event_files, read_scalars
from ppo_bench.rl import evaluate as evaluate_mod
from ppo_bench.rl.engine.population import RunSpec, expand, setting_name, value_text
from ppo_bench.rl.launch import train_from_config

TINY = ["env=inverted_pendulum", "algo.num_steps=32", "algo.minibatch_size=32", "algo.epochs=1",
        "total_timesteps=64", "checkpoint_every=1"]
RUN = "InvertedPendulum-v5/clip_eps0.2/seed0"


@settings(max_examples=8, deadline=None)
@given(ahead=st.sampled_from([0, 1, 60, 3600, 10 ** 7]))
def test_a_resumed_runs_events_sort_last_at_once_whatever_the_killed_files_name_says(tmp_path_factory, ahead):
    """The killed process's file bears a second up to months ahead (another node's clock): the resumed run's
    logger opens at once, and TensorBoard's order (names) puts its file last, so its purge hides the killed
    process's points past the checkpoint (step 4) and its own points are the ones read."""
    run = tmp_path_factory.mktemp("events")
    killed = RunLogger(run)
    for step in range(1, 9):
        killed.scalars({"a": float(step)}, step)
    killed.close()
    (old,) = event_files(run)
    fields = old.name.split(".")
    fields[3] = str(int(fields[3]) + ahead)
    old.rename(old.with_name(".".join(fields)))
    t = time.monotonic()
    resumed = RunLogger(run, purge_after=4)
    waited = time.monotonic() - t
    for step in range(5, 9):
        resumed.scalars({"a": 100.0 + step}, step)
    resumed.close()
    assert waited < 1.0, f"waited {waited:.1f} s for the clock"
    assert event_files(run)[-1] == resumed.path
    got = read_scalars(run)["a"]
    assert got.steps.tolist() == list(range(1, 9))
    assert got.values.tolist() == [1.0, 2.0, 3.0, 4.0, 105.0, 106.0, 107.0, 108.0]


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
def test_two_different_values_never_share_a_folder_name(a, b):
    assert float(value_text(a)) == a  # the name reads back as the value itself
    assert (setting_name({"name": "clip", "eps": a}) == setting_name({"name": "clip", "eps": b})) == (a == b)


def test_folder_names_stay_short_where_g_tells_values_apart():
    assert [value_text(v) for v in (0.2, 1e-9, 3, 3e38, 0.2000001)] == ["0.2", "1e-09", "3", "3e+38", "0.2000001"]
    assert setting_name({"name": "kl_adaptive", "beta": 1.0, "kl_target": 0.01}) == "kl_adaptive_beta1_kl_target0.01"


def test_a_setting_or_folder_named_twice_is_one_line_naming_it(tmp_path):
    clip = {"name": "clip", "eps": 0.2}
    with pytest.raises(ConfigError, match=r"^population.objectives lists the setting clip_eps0.2 twice; each "):
        expand("E-v0", [clip, dict(clip)], [0, 1], str(tmp_path), "ppo")
    assert len(expand("E-v0", [clip, {"name": "clip", "eps": 0.3}], [0, 1], str(tmp_path), "ppo")) == 4
    twice = RunSpec("E-v0", clip, 0, str(tmp_path), "ppo").dir
    with pytest.raises(ConfigError, match=f"^run folder {twice} is named twice in one launch"):
        RunLocks([twice, twice]).acquire()  # before: it waited for its own lock and named its own pid


def test_sighup_stops_a_run_like_sigterm_with_every_run_checkpointed(make_cfg, monkeypatch):
    """A dropped ssh session sends SIGHUP: the iteration it arrives in ends, every run is checkpointed, and the
    run resumes to the end."""
    from ppo_bench.rl.engine import trainer as trainer_mod

    cfg = make_cfg(*TINY[:-2], "total_timesteps=256", "checkpoint_every=100")
    real = trainer_mod.PopulationTrainer.update
    calls = []

    def update(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGHUP)
        return real(self, *a, **k)

    monkeypatch.setattr(trainer_mod.PopulationTrainer, "update", update)
    with pytest.raises(Interrupted) as e:
        train_from_config(cfg)
    assert e.value.exit_code == 128 + signal.SIGHUP and "SIGHUP" in str(e.value)
    assert (make_cfg.root / "runs" / RUN / CHECKPOINT).exists()  # checkpointed though checkpoint_every=100
    monkeypatch.setattr(trainer_mod.PopulationTrainer, "update", real)
    (out,) = train_from_config(make_cfg(*TINY[:-2], "total_timesteps=256", "checkpoint_every=100",
                                        "resume=true")).values()
    assert out["status"] == "finished" and out["global_step"] == 256
    assert signal.SIGHUP in StopRequest.SIGNALS


def test_what_a_kill_minus_9_left_mid_write_is_cleaned_up_by_the_next_process(make_cfg):
    """A temporary file of an atomic write is removed; a checkpoint written whole but not renamed into place is
    put in place when it is the newest (the rename from checkpoint.pt to checkpoint.prev.pt had happened)."""
    train_from_config(make_cfg(*TINY))
    run = make_cfg.root / "runs" / RUN
    (run / ".status.json.x1y2.tmp").write_bytes(b"\0" * 4096)  # a full-size temporary, never renamed
    (run / ".checkpoint.pt.new.a1b2.tmp").write_bytes(b"half")
    (run / CHECKPOINT).rename(run / NEW)  # killed between the two renames of save_checkpoint
    newest = (run / NEW).read_bytes()
    with RunLocks([run]):
        pass
    assert sorted(p.name for p in run.glob(".*") if p.name != ".lock") == []
    assert (run / CHECKPOINT).read_bytes() == newest and (run / PREVIOUS).exists()


def test_eval_finds_a_run_that_has_only_its_previous_checkpoint(make_cfg, capsys):
    train_from_config(make_cfg(*TINY))
    run = make_cfg.root / "runs" / RUN
    os.replace(run / PREVIOUS, run / "keep.pt")
    (run / CHECKPOINT).rename(run / PREVIOUS)  # checkpoint.pt gone: a damaged one set aside, say
    assert evaluate_mod.find_trained_runs(make_cfg.root / "runs") == [run]
    assert evaluate_mod.main([str(run), "--episodes", "1"]) == 0
    assert np.isfinite(float(capsys.readouterr().out.split("return ")[1].split(" ")[0]))
