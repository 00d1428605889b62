"""ppo_bench.common.tblog.read_scalars against TensorBoard's own EventAccumulator: the same points, purges included."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard import SummaryWriter

from ppo_bench.common.tblog import RunLogger, read_scalars, scalar_event


def accumulator(path) -> dict[str, list[tuple[int, float, float]]]:
    acc = EventAccumulator(str(path), size_guidance={SCALARS: 0})
    acc.Reload()
    return {t: [(e.step, e.value, e.wall_time) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def ours(path, tags=None) -> dict[str, list[tuple[int, float, float]]]:
    return {t: list(zip(s.steps.tolist(), s.values.tolist(), s.wall_times.tolist()))
            for t, s in read_scalars(path, tags).items()}


def test_a_resumed_run_reads_as_the_accumulator_reads_it(tmp_path):
    log = RunLogger(tmp_path)
    for step in range(0, 100, 10):  # a merged summary (two tags in one event) and a lone one
        log.scalars({"a": step / 10, "b": -step}, step)
        log.writer.add_scalar("c", step * 0.5, step)
    log.writer.close()
    time.sleep(1.05)  # the resumed file must sort after (RunLogger waits too)
    log = RunLogger(tmp_path, purge_after=40)  # killed after step 90, resumed from the checkpoint at 40
    for step in range(50, 130, 10):
        log.scalars({"a": 100 + step, "b": 7.0}, step)
    log.writer.close()
    ref = accumulator(tmp_path)
    assert ours(tmp_path) == ref
    assert [p[0] for p in ref["c"]] == [0, 10, 20, 30, 40]  # the purge did happen
    assert [p[1] for p in ref["a"]][4:6] == [4.0, 150.0]
    assert ours(tmp_path, ["b", "missing"]) == {"b": ref["b"]}


def test_an_old_format_file_purges_by_out_of_order_steps_per_tag(tmp_path):
    w = RecordWriter(open(tmp_path / "events.out.tfevents.1.host", "wb"))
    w.write(Event(wall_time=1.0, file_version="brain.Event:1").SerializeToString())

    def scalar(step, **values):
        summary = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
        w.write(Event(wall_time=2.0 + step, step=step, summary=summary).SerializeToString())

    for step in (1, 2, 3, 4):
        scalar(step, x=float(step), y=-float(step))
    scalar(2, x=20.0)  # goes back: drops x's points from step 2 on, not y's
    scalar(5, x=5.0, y=-5.0)
    w.close()
    ref = accumulator(tmp_path)
    assert ours(tmp_path) == ref
    assert [p[1] for p in ref["x"]] == [1.0, 20.0, 5.0] and len(ref["y"]) == 5


def one_event_file(folder, points: int):
    """A run folder with one event file: scalar "a" at steps 0 … points − 1, value = step."""
    w = SummaryWriter(str(folder))
    for step in range(points):
        w.add_scalar("a", float(step), step)
    w.close()
    (f,) = folder.glob("events.out.tfevents.*")
    return f


def test_a_record_cut_short_ends_the_file(tmp_path):
    f = one_event_file(tmp_path, 5)
    data = f.read_bytes()
    f.write_bytes(data[:-7])  # the last record loses its tail, as when a writer is killed mid-write
    with pytest.warns(UserWarning, match="cut short"):
        got = read_scalars(tmp_path)["a"]
    assert got.steps.tolist() == [0, 1, 2, 3] and got.values.dtype == np.float64
    assert ours(tmp_path) == accumulator(tmp_path)


def test_a_damaged_record_warns_and_keeps_what_came_before(tmp_path):
    f = one_event_file(tmp_path, 3)
    data = bytearray(f.read_bytes())
    data[-10:-5] = b"\xff" * 5  # garbage inside the last record's protobuf
    f.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum does not match"):
        got = read_scalars(tmp_path)["a"]
    assert got.steps.tolist() == [0, 1]


@pytest.mark.parametrize("n", [0, 1, 500])
def test_scalars_written_in_one_go_are_the_records_tensorboards_writer_makes(tmp_path, n):
    from ppo_bench.common.tblog import write_scalar_events

    rng = np.random.default_rng(n)
    steps = np.sort(rng.integers(0, 2**40, n))  # steps past 32 bits: a 6-byte varint
    values = rng.normal(size=n) * 10.0 ** rng.integers(-3, 6, n)
    (tmp_path / "fast").mkdir()
    path = write_scalar_events(tmp_path / "fast", "charts/episodic_return", steps, values, wall_time=1.5e9)
    # the reference: the same Events through tensorboard's own record writer, one record at a time
    events = [Event(wall_time=1.5e9, file_version="brain.Event:2")] + [
        Event(wall_time=1.5e9, step=int(s), summary=Summary(value=[Summary.Value(tag="charts/episodic_return",
                                                                                 simple_value=float(v))]))
        for s, v in zip(steps, values)]
    ref = tmp_path / "ref.tfevents"
    with open(ref, "wb") as f:
        writer = RecordWriter(f)
        for e in events:
            writer.write(e.SerializeToString())
        writer.flush()
    assert path.read_bytes() == ref.read_bytes()
    expected = [(int(s), float(np.float32(v)), 1.5e9) for s, v in zip(steps, values)]
    assert ours(tmp_path / "fast").get("charts/episodic_return", []) == expected
    assert accumulator(tmp_path / "fast").get("charts/episodic_return", []) == expected


# Events as TensorBoard's writers make them, and some they do not: every field the scalar fast path reads, at its
# edges (step 0, which protobuf leaves out; negative and 64-bit steps; tags of any text; NaN and infinite values)
_values = st.lists(st.tuples(st.text(max_size=12), st.floats(width=32)), max_size=4)
_events = st.builds(
    lambda wall, step, values, extra: Event(
        wall_time=wall, step=step, **({"file_version": extra} if extra is not None else {}),
        summary=Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in values])),
    st.floats(allow_nan=False, min_value=0.0, max_value=4e9) | st.just(0.0),
    st.integers(-2**63, 2**63 - 1) | st.integers(0, 300),
    _values, st.none() | st.just("brain.Event:2"))


def decoded(event: Event):
    """What the fast path must return for an Event: its wall time, step and (tag, simple value)s."""
    return event.wall_time, event.step, [(v.tag, v.simple_value) for v in event.summary.value]


@given(_events)
@settings(max_examples=400, deadline=None)
def test_the_scalar_fast_path_decodes_as_tensorboards_event_class(event):
    got = scalar_event(event.SerializeToString())
    if event.file_version or event.wall_time == 0.0:  # not a record of wall time, step and summary only
        assert got is None
    else:
        assert got is not None and repr(got) == repr(decoded(event))  # repr: NaN equals NaN


@given(st.binary(max_size=40), _events)
@settings(max_examples=400, deadline=None)
def test_the_scalar_fast_path_never_reads_what_the_event_class_would_not(noise, event):
    """Bytes that are no scalar event, or an event cut or spliced: the fast path returns None or what the Event
    class decodes, never something else."""
    from google.protobuf.message import DecodeError

    payload = event.SerializeToString()
    for candidate in (noise, payload[:len(noise) % (len(payload) + 1)], payload + noise, noise + payload):
        got = scalar_event(candidate)
        if got is None:
            continue
        try:
            reference = Event.FromString(candidate)
        except DecodeError:
            raise AssertionError(f"{candidate!r}: decoded {got}, which the Event class refuses") from None
        assert repr(got) == repr(decoded(reference)), candidate


@given(st.lists(st.tuples(st.integers(-2**63, 2**63 - 1) | st.integers(0, 200), st.floats(width=32)), max_size=30),
       st.text(min_size=1, max_size=20), st.floats(min_value=1.0, max_value=4e9))
@settings(max_examples=150, deadline=None)
def test_scalars_written_at_once_equal_tensorboards_records(tmp_path_factory, points, tag, wall):
    from ppo_bench.common.tblog import write_scalar_events

    folder = tmp_path_factory.mktemp("w")
    path = write_scalar_events(folder, tag, [s for s, _ in points], [v for _, v in points], wall_time=wall)
    ref = folder / "ref"
    with open(ref, "wb") as f:
        writer = RecordWriter(f)
        writer.write(Event(wall_time=wall, file_version="brain.Event:2").SerializeToString())
        for s, v in points:
            writer.write(Event(wall_time=wall, step=s, summary=Summary(value=[
                Summary.Value(tag=tag, simple_value=v)])).SerializeToString())
        writer.flush()
    assert path.read_bytes() == ref.read_bytes()


@given(st.lists(_events.map(Event.SerializeToString) | st.binary(max_size=30), max_size=12))
@settings(max_examples=200, deadline=None)
def test_a_batch_of_records_decodes_as_each_record_alone(payloads):
    """``scalar_records`` on many records at once (as ``read_scalars`` calls it on a file) gives each record what it
    gives that record alone: a record's neighbours never change how it is read."""
    from ppo_bench.common.tblog import scalar_records

    buf = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    lengths = np.array([len(p) for p in payloads], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    batch = scalar_records(buf, starts, lengths)
    for k, payload in enumerate(payloads):
        alone = scalar_event(payload)
        assert batch.ok[k] == (alone is not None)
        if alone is not None:
            at = batch.record == k
            got = (float(batch.wall_time[k]), int(batch.step[k]),
                   [(batch.tags[t], float(v)) for t, v in zip(batch.tag[at].tolist(), batch.value[at].tolist())])
            assert repr(got) == repr(alone)
