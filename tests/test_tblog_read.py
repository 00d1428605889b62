"""ppo_bench.common.tblog.read_scalars against TensorBoard's own EventAccumulator: the same points, purges included."""

import time

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard import SummaryWriter

from ppo_bench.common.tblog import RunLogger, read_scalars


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
