"""Finished runs carried between machines by ppo_bench.analysis.archive: the report reads the same numbers from an
unpacked run as from the original, a relaunched sweep skips it, and other settings are still refused."""

import numpy as np
import pytest

from ppo_bench.analysis.archive import main, pack, unpack
from ppo_bench.analysis.runs import find_runs
from ppo_bench.rl.launch import train_from_config
from ppo_bench.common.errors import ConfigError

TINY = ["env.id=Pendulum-v1", "algo.num_steps=200", "algo.minibatch_size=100", "algo.epochs=1",
        "total_timesteps=800", "population.seeds=[0,1]",
        "population.objectives=[{name:clip,eps:0.2},{name:none}]", "resume=auto"]


def test_pack_unpack_keeps_what_the_report_reads_and_the_sweep_skips_the_runs(make_cfg, tmp_path, capsys):
    first = train_from_config(make_cfg(*TINY))
    assert {s["status"] for s in first.values()} == {"finished"}
    packed = pack(tmp_path / "runs", tmp_path / "archive")
    assert packed == {"Pendulum-v1": 4}
    assert sorted(p.name for p in (tmp_path / "archive" / "Pendulum-v1").iterdir()) == ["clip_eps0.2.npz", "none.npz"]

    assert unpack(tmp_path / "archive", tmp_path / "elsewhere") == {"Pendulum-v1": 4}
    original = {r.key: r for r in find_runs([tmp_path / "runs"])}
    carried = {r.key: r for r in find_runs([tmp_path / "elsewhere"])}
    assert original.keys() == carried.keys() and len(carried) == 4
    for key, r in original.items():
        c = carried[key]
        assert len(r.steps) > 0 and np.array_equal(r.steps, c.steps) and np.array_equal(r.returns, c.returns)
        assert (c.status, c.global_step, c.wall_s, c.objective) == (r.status, r.global_step, r.wall_s, r.objective)
        assert not (c.dir / "checkpoint.pt").exists()  # checkpoints do not travel

    # the sweep relaunched on the carried runs skips them all: finished, same identity
    again = train_from_config(make_cfg(*TINY, f"run_root={tmp_path}/elsewhere"))
    assert {s["status"] for s in again.values()} == {"finished (skipped)"}
    for name, s in again.items():
        assert s["score_last100"] == first[name]["score_last100"]
    # other settings on a carried run are refused, as on the original
    with pytest.raises(ConfigError, match=r"algo.lr: 0.0003 \(the run\) vs 0.001 \(now\)"):
        train_from_config(make_cfg(*TINY, f"run_root={tmp_path}/elsewhere", "algo.lr=1e-3"))
    # unpacking onto existing runs writes nothing
    with pytest.raises(ConfigError, match="already holds a run"):
        unpack(tmp_path / "archive", tmp_path / "elsewhere")
    # one setting only (Figure 3's PPO runs from Table 1's): a sweep of that setting alone skips them
    assert main(["unpack", str(tmp_path / "archive"), str(tmp_path / "one"), "--settings", "clip_eps0.2"]) == 0
    assert sorted(p.name for p in (tmp_path / "one" / "Pendulum-v1").iterdir()) == ["clip_eps0.2"]
    solo = [a for a in TINY if not a.startswith("population.objectives")]  # the default objective: clip, eps 0.2
    again = train_from_config(make_cfg(*solo, f"run_root={tmp_path}/one"))
    assert {s["status"] for s in again.values()} == {"finished (skipped)"} and len(again) == 2
    with pytest.raises(ConfigError, match="no archive of setting clip_eps0.3 in .*; it has clip_eps0.2, none"):
        unpack(tmp_path / "archive", tmp_path / "two", ["clip_eps0.3"])


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["pack", str(tmp_path / "nowhere"), str(tmp_path / "a")]) == 2
    assert main(["unpack", str(tmp_path), str(tmp_path / "r")]) == 2
    assert main(["repack"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 3 and all(line.startswith("error: ") for line in err), err
