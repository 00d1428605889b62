"""The report prints no wrong number without a word: a run is read with every number verified (event-file CRCs,
config.yaml against identity.json, the score and last step against status.json) and a run whose files are damaged
in any generated way — cut, bit-flipped, overwritten with garbage, rewritten as other JSON or YAML — is either
read with exactly its undamaged numbers or named damaged and scored nowhere; the same run found twice is counted
once, and two runs claiming one identity are flagged; archives are read whole or refused naming the file."""

import json
import shutil
import struct

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ppo_bench.analysis import archive as archive_mod
from ppo_bench.analysis import report as report_mod
from ppo_bench.analysis.runs import find_runs
from ppo_bench.analysis.sweep import find_sweep_runs, load_sweep_run, sweep_report
from ppo_bench.common.identity import training_keys
from ppo_bench.rl.engine.config import NOT_IDENTITY

TINY = ["env=inverted_pendulum", "algo.num_steps=64", "algo.minibatch_size=64", "algo.epochs=1",
        "total_timesteps=256", "population.seeds=[0,1]"]
RUN = "InvertedPendulum-v5/clip_eps0.2/seed{}"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, trained_and_packed):
    return trained_and_packed(tmp_path_factory.mktemp("sweep"), *TINY)


def numbers(run) -> tuple:
    """What the reports take from a run: its settings, status, length and score."""
    return (training_keys(run.config, NOT_IDENTITY), run.config.get("total_timesteps"), run.status, run.global_step,
            run.score)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=6)


def damage(data, text: bytes, name: str) -> bytes:
    """A generated fault of a run's file: cut, bits flipped, garbage written over it, or (for its JSON and YAML)
    a field rewritten with another value of any type."""
    kind = data.draw(st.sampled_from(["cut", "flip", "garbage", "field"] if name != "events" else ["cut", "flip",
                                                                                                  "garbage", "record"]))
    b = bytearray(text)
    if kind == "cut":
        return bytes(b[:data.draw(st.integers(0, len(b) - 1))])
    if kind == "flip":
        for bit in data.draw(st.lists(st.integers(0, 8 * len(b) - 1), min_size=1, max_size=3)):
            b[bit // 8] ^= 1 << (bit % 8)
        return bytes(b)
    if kind == "garbage":
        at = data.draw(st.integers(0, len(b) - 1))
        junk = data.draw(st.binary(min_size=1, max_size=32))
        b[at:at + len(junk)] = junk
        return bytes(b)
    if kind == "record":  # the cut no reader of the file can see: whole records, the last ones, gone
        ends, i = [0], 0
        while i + 12 <= len(b):
            i += 12 + struct.unpack_from("<Q", b, i)[0] + 4
            ends.append(i)
        return bytes(b[:data.draw(st.sampled_from(ends[:-1]))])
    if name == "config.yaml":
        doc = yaml.safe_load(text)
        section = data.draw(st.sampled_from(sorted(k for k, v in doc.items() if isinstance(v, dict))))
        key = data.draw(st.sampled_from(sorted(doc[section]) or ["x"]))
        doc[section][key] = data.draw(json_values)
        return yaml.safe_dump(doc).encode()
    doc = json.loads(text)
    key = data.draw(st.sampled_from(sorted(doc)))
    doc[key] = data.draw(json_values)
    return json.dumps(doc).encode()


@FUZZ
@given(data=st.data())
def test_a_damaged_run_is_read_exactly_or_named_damaged(sweep, tmp_path_factory, data, capsys):
    where = tmp_path_factory.mktemp("damaged")
    shutil.copytree(sweep / "runs", where / "runs")
    seed = data.draw(st.sampled_from([0, 1]))
    run = where / "runs" / RUN.format(seed)
    name = data.draw(st.sampled_from(["events", "status.json", "config.yaml", "identity.json"]))
    path = next(run.glob("events.out.tfevents.*")) if name == "events" else run / name
    path.write_bytes(damage(data, path.read_bytes(), name))
    clean = {d.name: numbers(load_sweep_run(d, [])) for d in find_sweep_runs(sweep / "runs")}
    for d in find_sweep_runs(where / "runs"):
        got = load_sweep_run(d, [])
        if d == run:
            event(f"{name}: {'named damaged' if got.status == 'damaged' else 'read exactly'}")
        if got.status == "damaged":
            assert d == run and got.damage and "\n" not in got.damage
        else:
            assert numbers(got) == clean[d.name], "a damaged run read as other numbers"
    for r in find_runs([where / "runs"]):  # Table 1's reader alike
        if r.status == "damaged":
            assert r.dir == run and r.error and "\n" not in r.error
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(ln.startswith("warning: ") for ln in err.splitlines())


def test_a_finished_run_cut_between_records_is_damaged_not_rescored(sweep, tmp_path, capsys):
    """A file cut exactly between two records is whole as far as its framing goes: the run's status.json says
    how many episodes it scored and what score they gave, and the report says the files disagree."""
    shutil.copytree(sweep / "runs", tmp_path / "runs")
    run = tmp_path / "runs" / RUN.format(1)
    f = next(run.glob("events.out.tfevents.*"))
    data, ends, i = f.read_bytes(), [], 0
    while i + 12 <= len(data):
        i += 12 + struct.unpack_from("<Q", data, i)[0] + 4
        ends.append(i)
    f.write_bytes(data[:ends[len(ends) // 2]])
    got = load_sweep_run(run, [])
    assert got.status == "damaged" and "status.json" in got.damage
    rep = sweep_report(tmp_path / "runs", ["objective.name"], out_dir=tmp_path / "report", reps=20)
    assert rep.table.seeds.tolist() == [1] and rep.table.damaged.tolist() == [1]
    assert any(str(run) in n and "damaged" in n for n in rep.notes)
    assert report_mod.main([str(tmp_path / "runs"), "--out-dir", str(tmp_path / "t1"), "--reps", "20"]) == 0
    assert f"damaged, not scored" in (tmp_path / "t1" / "table1.md").read_text()


def test_the_same_sweep_found_twice_is_counted_once_and_a_conflict_is_flagged(sweep, tmp_path):
    for copy in ("a", "b"):
        shutil.copytree(sweep / "runs", tmp_path / "both" / copy)
    rep = sweep_report(tmp_path / "both", ["objective.name"], out_dir=tmp_path / "report", reps=20)
    assert rep.table.seeds.tolist() == [2] and len(rep.runs) == 2
    assert sum("the same run as" in n for n in rep.notes) == 2
    status = tmp_path / "both" / "b" / RUN.format(0) / "status.json"
    status.write_text(status.read_text().replace('"wall_s"', '"wall_s_other"'))  # another run of that identity
    rep = sweep_report(tmp_path / "both", ["objective.name"], out_dir=tmp_path / "report", reps=20)
    assert rep.table.seeds.tolist() == [2]
    assert any("another run claiming the identity and seed of" in n for n in rep.notes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_archive_unpacks_whole_or_is_refused_naming_it(sweep, tmp_path_factory, data, capsys):
    where = tmp_path_factory.mktemp("archive")
    shutil.copytree(sweep / "archive", where / "archive")
    (npz,) = (where / "archive").glob("*/*.npz")
    b = bytearray(npz.read_bytes())
    kind = data.draw(st.sampled_from(["cut", "flip", "garbage"]))
    if kind == "cut":
        b = b[:data.draw(st.integers(0, len(b) - 1))]
    elif kind == "flip":
        bit = data.draw(st.integers(0, 8 * len(b) - 1))
        b[bit // 8] ^= 1 << (bit % 8)
    else:
        at = data.draw(st.integers(0, len(b) - 1))
        junk = data.draw(st.binary(min_size=1, max_size=16))
        b[at:at + len(junk)] = junk
    npz.write_bytes(bytes(b))
    code = archive_mod.main(["unpack", str(where / "archive"), str(where / "runs")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    event("refused" if code == 2 else "unpacked")
    if code == 2:
        assert len(err) == 1 and err[0].startswith(f"error: archive {npz} is unreadable or damaged")
        assert not (where / "runs").exists()
        return
    assert code == 0
    clean = {r.key: (r.status, r.returns.tolist()) for r in find_runs([sweep / "runs"])}
    for r in find_runs([where / "runs"]):  # unpacked: the same numbers, or named damaged by the reader
        assert r.status == "damaged" or (r.status, r.returns.tolist()) == clean[r.key]
