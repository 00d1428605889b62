"""The event reader verifies what it reads: every record of an event file is checked against the masked CRC32C of
its length and payload (TFRecord's framing), so generated damage — a file cut anywhere, bits flipped, bytes
overwritten with garbage — either leaves the exact points of the undamaged file or is named (``tblog.Damage``),
and what is read is never anything but a prefix of what was written."""

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_crc
from torch.utils.tensorboard import SummaryWriter

from ppo_bench.common.tblog import masked_crc32c, read_event_file, read_scalars

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    """A run's event file: episode returns and lengths, per-iteration statistics, merged summaries."""
    folder = tmp_path_factory.mktemp("events")
    w = SummaryWriter(str(folder))
    rng = np.random.default_rng(0)
    for step in range(40):
        w.add_scalar("charts/episodic_return", float(rng.normal(100, 30)), step * 7)
        if step % 4 == 0:
            w.add_scalars("losses", {"policy": float(rng.normal()), "value": float(rng.random())}, step * 7)
    w.close()
    (f,) = folder.glob("events.out.tfevents.*")
    return f, f.read_bytes()


def points(path) -> dict[str, list[tuple[int, float]]]:
    damage = []
    got = read_scalars(path, damage=damage)
    return {t: list(zip(s.steps.tolist(), s.values.tolist())) for t, s in got.items()}, damage


def record_ends(data: bytes) -> set[int]:
    ends, i = {0}, 0
    while i + 12 <= len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        i += 12 + n + 4
        ends.add(i)
    return ends


@FUZZ
@given(data=st.binary(max_size=3000), cuts=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 700)), max_size=8))
def test_the_batched_crc_is_tensorboards(data, cuts):
    buf = np.frombuffer(data, dtype=np.uint8)
    spans = [(min(s, len(data)), min(n, len(data) - min(s, len(data)))) for s, n in cuts] or [(0, len(data))]
    starts, lengths = np.array([s for s, _ in spans], dtype=np.int64), np.array([n for _, n in spans], dtype=np.int64)
    assert masked_crc32c(buf, starts, lengths).tolist() == [tensorboard_crc(data[s:s + n]) for s, n in spans]


def check(path, original: bytes, damaged: bytes, clean) -> None:
    path.write_bytes(damaged)
    got, damage = points(path)
    for tag, ps in got.items():  # never a point the writer did not write, in its place
        assert ps == clean[tag][:len(ps)], tag
    complete = all(len(got.get(t, [])) == len(ps) for t, ps in clean.items())
    if damaged != original:
        # the one damage no reader can see in the file itself: a cut exactly between two records (the report
        # finds it by the run's status.json, tests/test_report_integrity.py)
        cut_between = original.startswith(damaged) and len(damaged) in record_ends(original)
        assert damage or cut_between, "damage that was not named"
        assert complete or damage or cut_between
    else:
        assert complete and not damage


@FUZZ
@given(st.data())
def test_a_cut_bit_flips_or_garbage_give_the_exact_points_or_name_the_damage(event_file, tmp_path_factory, data):
    path, original = event_file
    clean, none = points(path)
    assert not none
    kind = data.draw(st.sampled_from(["cut", "flip", "garbage", "insert"]))
    b = bytearray(original)
    if kind == "cut":
        b = b[:data.draw(st.integers(0, len(b)))]
    elif kind == "flip":
        for bit in data.draw(st.lists(st.integers(0, 8 * len(b) - 1), min_size=1, max_size=4)):
            b[bit // 8] ^= 1 << (bit % 8)
    elif kind == "garbage":
        at = data.draw(st.integers(0, len(b) - 1))
        junk = data.draw(st.binary(min_size=1, max_size=64))
        b[at:at + len(junk)] = junk
    else:
        at = data.draw(st.integers(0, len(b)))
        b[at:at] = data.draw(st.binary(min_size=1, max_size=64))
    copy = tmp_path_factory.mktemp("damaged") / path.name
    check(copy, original, bytes(b), clean)


def test_damage_is_named_where_it_begins(event_file, tmp_path):
    path, original = event_file
    copy = tmp_path / path.name
    b = bytearray(original)
    b[len(b) // 2] ^= 0x10
    copy.write_bytes(bytes(b))
    events, damage = read_event_file(copy)
    assert damage.kind == "checksum" and damage.path == copy and damage.offset <= len(b) // 2
    assert str(damage).startswith(f"{copy} has a record whose checksum does not match (damaged) at byte ")
    copy.write_bytes(original[:-3])
    events, damage = read_event_file(copy)
    assert damage.kind == "cut" and "cut short" in str(damage)
