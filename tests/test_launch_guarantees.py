"""A launch never deletes or replaces what a run holds, and never records a run under settings or a length other
than its own — proved over generated run folders (a finished or an interrupted run with any of its files removed
or damaged) × generated launches (resume=false/true/auto, the same or other settings, a lower, equal or higher
budget). Each launch either is refused in one line with the folder untouched, or trains; and then the folder
is the run the launch asked for, finished at its length, with every event file a checkpointed run held before
still there, byte for byte."""

import math
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.identity import read_identity
from ppo_bench.rl.engine.trainer import identity_keys
from ppo_bench.rl.launch import population_specs, train_from_config
from scripts.fault_drill import snapshot

SMALL = ["env=inverted_pendulum", "algo.num_steps=32", "algo.minibatch_size=32", "algo.epochs=1",
         "total_timesteps=64", "checkpoint_every=1"]
RUN = "InvertedPendulum-v5/clip_eps0.2/seed0"
FILES = ("checkpoint.pt", "checkpoint.prev.pt", "status.json", "identity.json", "config.yaml", "events")
OTHER = {"algo.lr": 0.01, "env.num_envs": 2, "model.hidden": [32]}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Two run folders, trained once: 'finished' (64 of 64 steps) and 'interrupted' (checkpointed at 32 of 128)."""
    from hydra import compose, initialize_config_dir

    from ppo_bench.rl.engine.config import CONF_DIR

    root = tmp_path_factory.mktemp("templates")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"run_root={root}/finished", "progress=never", *SMALL])
    train_from_config(cfg)
    train_from_config(OmegaConf.merge(cfg, {"run_root": f"{root}/interrupted", "total_timesteps": 32}))
    run = root / "interrupted" / RUN  # as a process killed after its first checkpoint of a 128-step run leaves it
    ident = (run / "identity.json").read_text().replace('"total_timesteps": 32', '"total_timesteps": 128')
    (run / "identity.json").write_text(ident)
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("total_timesteps: 32", "total_timesteps: 128"))
    (run / "status.json").write_text((run / "status.json").read_text().replace('"finished"', '"running"'))
    return cfg, root


def events(run) -> dict:
    return {p.name: p.read_bytes() for p in run.glob("events.out.tfevents.*")}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(["finished", "interrupted"]), removed=st.sets(st.sampled_from(FILES)),
       damaged=st.sampled_from([None, *FILES]), resume=st.sampled_from([False, True, "auto"]),
       other=st.sampled_from([None, *OTHER]), total=st.sampled_from([32, 64, 128]))
def test_a_launch_keeps_every_run_or_is_refused_in_one_line(templates, tmp_path_factory, base, removed, damaged,
                                                             resume, other, total):
    cfg, root = templates
    where = tmp_path_factory.mktemp("launch")
    run = where / RUN
    shutil.copytree(root / base / RUN, run)
    for name in removed:
        for p in (run.glob("events.out.tfevents.*") if name == "events" else [run / name]):
            p.unlink(missing_ok=True)
    if damaged is not None and damaged not in removed:
        for p in (run.glob("events.out.tfevents.*") if damaged == "events" else [run / damaged]):
            if p.exists():
                p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    before, events_before = snapshot(run, skip=(".lock",)), events(run)
    names = {p.name for p in run.iterdir()}
    checkpointed = bool(names & {"checkpoint.pt", "checkpoint.prev.pt", "status.json"})
    identified = bool(names & {"identity.json", "config.yaml"})
    launch = OmegaConf.merge(cfg, {"run_root": str(where), "resume": resume, "total_timesteps": total})
    if other:
        OmegaConf.update(launch, other, OTHER[other])
    try:
        train_from_config(launch)
    except ConfigError as e:
        assert "\n" not in str(e)
        assert snapshot(run, skip=(".lock",)) == before, "a refused launch changed the folder"
        return
    # it trained (or skipped): the folder is the run this launch asked for, at the launch's length
    (spec,) = population_specs(launch)
    stored = read_identity(run)
    assert stored["config"] == identity_keys(launch, spec), "recorded under settings other than the launch's"
    assert other is None or not (identified or checkpointed), "another run's folder taken over"
    assert resume or not checkpointed, "resume=false replaced a checkpointed run"
    status = (run / "status.json").read_text()
    steps = math.ceil(total / (32 * launch.env.num_envs)) * 32 * launch.env.num_envs
    assert '"status": "finished"' in status and f'"global_step": {steps},' in status
    assert stored["total_timesteps"] >= total and OmegaConf.load(run / "config.yaml").total_timesteps >= total
    if checkpointed:  # nothing a checkpointed or finished run held is deleted or rewritten
        assert all(events(run).get(n) == b for n, b in events_before.items()), "a run's event file was lost"
        assert total >= {"finished": 64, "interrupted": 128}[base], "a run recorded shorter than it was launched"
