"""TensorBoard logging per run (docs: "Outputs and TensorBoard"): one directory per run, scalars, and the
HParams plugin; and reading a run's scalars back as TensorBoard shows them (``read_scalars``)."""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

from tensorboard.compat.proto.summary_pb2 import Summary


def flat_hparams(d: dict, prefix: str = "", keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Flatten a nested config into HParams-friendly scalars (lists, and mappings named in keep, become strings).

    A key whose value is null is left out rather than written as a string: HParams sorts and filters a
    column by the type of its values, and one string among numbers would break both."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in keep:
            out.update(flat_hparams(v, key + ".", keep))
        elif v is None:
            continue
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


def hparams_row(config: dict, leave_out: Iterable[str] = (), settings: Iterable[str] = ()) -> dict[str, Any]:
    """One run's row of TensorBoard's HParams table, made to be read: its config flattened (``flat_hparams``)
    without the keys of ``leave_out`` (a dotted key, or a section with everything below it), integers as text, and
    every key of ``settings`` (dotted) a column in every row.

    HParams types a column by its values: numbers show with five significant digits (a seed reads 1.0000), so an
    integer goes as its text ("1", "2048"), a discrete column that filters by ticking values. A key of ``settings``
    is text as written ("0.2", "3", "0.003") and an empty cell in a run that does not have it (ε of a KL run):
    TensorBoard lists a column among the first only when its values differ, and the few settings of a small sweep
    (one ε, one d_targ) would otherwise sink among the dozens that do not."""
    leave_out = tuple(leave_out)
    settings = list(settings)
    row: dict[str, Any] = {}
    for key, value in flat_hparams(config).items():
        if any(key == k or key.startswith(k + ".") for k in leave_out) or key in settings:
            continue
        row[key] = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    flat_settings = flat_hparams(config)
    for key in settings:
        value = flat_settings.get(key)
        row[key] = "" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)
    return row


def interpolated_keys(cfg) -> list[str]:
    """The dotted keys of an OmegaConf config whose value is another key's (``gamma: ${algo.gamma}``): copies.
    A resolver's value (``${hydra:runtime.cwd}/runs``, ``${now:...}``) is not a copy."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    out: list[str] = []

    def visit(node, prefix: str) -> None:
        for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
            if OmegaConf.is_interpolation(node, key):
                text = node._get_node(key)._value()
                if isinstance(text, str) and text.startswith("${") and text.endswith("}") and \
                        text.count("${") == 1 and ":" not in text:
                    out.append(f"{prefix}{key}")
                continue
            child = node._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_missing():
                visit(child, f"{prefix}{key}.")

    visit(cfg, "")
    return out


def _stamp(name: str) -> int | None:
    """The creation second an event file's name begins with (``events.out.tfevents.<second>.<host>.<pid>.<n>``)."""
    fields = name.split(".")
    return int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else None


def sort_last(writer) -> Path:
    """Make the event file a new SummaryWriter just opened sort after every other event file of its folder, without
    waiting: TensorBoard reads a run's files in name order, a name begins with its creation second, and a resumed
    run's file must come after the killed process's so that its purge hides their events past the checkpoint. A
    file of the same second (or bearing a later time: another machine's clock ahead) gets the next stamp instead of
    a wait for the clock. Returns the file's path.

    tensorboard's writer appends every record by reopening its file by name (``GFile``), so the file is renamed
    once its queue is empty and the writer is told the new name."""
    events = writer.file_writer.event_writer
    path = Path(events._file_name)
    stamps = [t for p in path.parent.glob("events.out.tfevents.*") if p != path and (t := _stamp(p.name)) is not None]
    own = _stamp(path.name)
    if own is None or not stamps or own > max(stamps):
        return path
    writer.flush()  # nothing in flight while the file changes its name
    fields = path.name.split(".")
    fields[3] = f"{max(stamps) + 1:010d}"
    target = path.with_name(".".join(fields))
    os.replace(path, target)
    events._file_name = str(target)
    events._general_file_writer.filename = os.fsencode(target)
    return target


class RunLogger:
    def __init__(self, run_dir: Path, hparams: dict[str, Any] | None = None, purge_after: int | None = None,
                 name: str | None = None):
        """hparams: flat scalars for the HParams tab (``flat_hparams``, ``hparams_row``); name: the run's trial id
        there (default: its folder's path).
        purge_after: on resume, the checkpoint's step — events a killed process logged after it are
        hidden by TensorBoard (and its EventAccumulator), so the resumed run does not repeat them.

        Only the run's own values are written (a session-start record in its own event file), never an
        experiment record. TensorBoard's HParams plugin takes its columns from the one experiment record it
        finds; without one it builds the experiment from every run's values: the union of their keys
        (a run without a key — ε of a KL run — shows an empty cell), each column typed and its domain
        (values or range) taken over all runs, the columns that vary first, and every scalar tag as a
        metric. So a mixed sweep, even one trained by many processes, lists every key that varies."""
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb
        from torch.utils.tensorboard import SummaryWriter  # here: the readers below need no torch

        purge = None if purge_after is None else purge_after + 1
        self.writer = SummaryWriter(log_dir=str(run_dir), flush_secs=30, purge_step=purge)
        self.path = sort_last(self.writer)
        if hparams is not None:
            self.writer.file_writer.add_summary(hparams_pb(hparams, trial_id=name or str(run_dir)))

    def scalars(self, values: dict[str, float], step: int) -> None:
        """All values at one step in one event — one summary with a value per tag, as TF's merged
        summaries are — which TensorBoard reads per tag exactly as one add_scalar each. Every event is a
        hand-off to SummaryWriter's writer thread (~0.1 ms of CPU, measured), so an episode's return and
        length, or an iteration's dozen statistics, cost one hand-off instead of one per tag."""
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self.writer.file_writer.add_summary(summary, step)

    def text(self, tag: str, rows: list[dict], step: int) -> None:
        """Rows of a small table (e.g. prompt / completion / reward) as Markdown in the Text tab."""
        if not rows:
            return
        cols = list(rows[0])
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            lines.append("| " + " | ".join(str(r[c]).replace("|", "\\|").replace("\n", "⏎") for c in cols) + " |")
        self.writer.add_text(tag, "\n".join(lines), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Scalars(NamedTuple):
    steps: np.ndarray  # int64
    values: np.ndarray  # float64 (logged as float32)
    wall_times: np.ndarray  # float64, seconds since the epoch

    @classmethod
    def empty(cls) -> "Scalars":
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))


def event_files(path: str | Path) -> list[Path]:
    """A run folder's event files in the order TensorBoard reads them (by name), or the one file given."""
    p = Path(path)
    if not p.is_dir():
        return [p]
    return sorted(f for f in p.iterdir() if "tfevents" in f.name and not f.name.endswith(".profile-empty"))


class Damage(NamedTuple):
    """Where an event file stops being what its writer wrote: ``kind`` is 'cut' (it ends inside a record: a writer
    killed mid-record, or a file cut short), 'checksum' (a record's length or payload fails its CRC: flipped bits,
    garbage) or 'undecodable' (the checksums hold, but the record is no TensorBoard event: not an event file)."""

    path: Path
    offset: int  # the byte where the first bad record begins
    kind: str
    records: int  # records read whole before it

    def __str__(self) -> str:
        what = {"cut": "ends inside a record (cut short)", "checksum": "has a record whose checksum does not match "
                "(damaged)", "undecodable": "has a record that is no TensorBoard event"}[self.kind]
        return f"{self.path} {what} at byte {self.offset}, after {self.records} whole records"


# the TFRecord framing every event file is written in: length (uint64), its masked CRC32C, payload, its masked CRC32C
_HEADER, _CRC = 8, 4
_BATCHED_CRC_BYTES = 512  # payloads up to this long are checksummed together; longer ones (rare) one by one


def masked_crc32c(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The masked CRC32C (the Castagnoli CRC TFRecord stores, rotated and offset) of ``buf[s:s + n]`` for every
    (s, n) of ``starts``, ``lengths``, all records stepped together a byte at a time with the table of
    tensorboard's own writer (``pywrap_tensorflow.CRC_TABLE``); a record longer than ``_BATCHED_CRC_BYTES`` goes
    through that module's ``masked_crc32c``. Tested against it."""
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tf_crc

    table = np.array(tf_crc.CRC_TABLE, dtype=np.uint32)
    out = np.zeros(len(starts), dtype=np.uint32)
    long = lengths > _BATCHED_CRC_BYTES
    for k in np.flatnonzero(long):
        out[k] = tf_crc.masked_crc32c(buf[starts[k]:starts[k] + lengths[k]].tobytes())
    short = np.flatnonzero(~long)
    order = short[np.argsort(-lengths[short], kind="stable")]  # longest first: the records still going are a prefix
    s, n = starts[order], lengths[order]
    crc = np.full(len(order), 0xFFFFFFFF, dtype=np.uint32)
    going = len(order)
    for j in range(int(n.max(initial=0))):
        while going and n[going - 1] <= j:
            going -= 1
        c = crc[:going]
        crc[:going] = table[(c ^ buf[s[:going] + j]) & 0xFF] ^ (c >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)  # uint32: wraps mod 2^32
    out[order] = masked
    return out


# The wire format (protobuf) of the Events that carry scalars, as TensorBoard's writers serialise them: field 1
# ``wall_time`` (double), field 2 ``step`` (varint, left out when 0), field 5 ``summary`` holding field-1 ``Value``s,
# each a field-1 ``tag`` (string) and a field-2 ``simple_value`` (float). Written and read here without building a
# message per point; any other record goes through tensorboard's own Event class.
_WALL_TIME, _STEP, _SUMMARY, _VALUE, _TAG, _SIMPLE_VALUE = 0x09, 0x10, 0x2A, 0x0A, 0x0A, 0x15


def varint_bytes(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The protobuf varints of int64s (negative ones as their 64-bit two's complement: ten bytes), as a (len(n), 10)
    byte matrix and each one's length."""
    u = np.asarray(n, dtype=np.int64).astype(np.uint64)
    groups = (u[:, None] >> (np.uint64(7) * np.arange(10, dtype=np.uint64))) & np.uint64(0x7F)
    nonzero = groups != 0
    highest = 9 - np.argmax(nonzero[:, ::-1], axis=1)  # the last 7-bit group that is not 0
    length = np.where(nonzero.any(axis=1), highest + 1, 1)
    more = np.arange(10) < (length[:, None] - 1)
    return (groups | (more * 0x80).astype(np.uint64)).astype(np.uint8), length


class ScalarRecords(NamedTuple):
    """The records of a batch that ``scalar_records`` decoded, and their values in record order."""

    ok: np.ndarray  # bool per record: decoded here (the others are for tensorboard's Event class)
    wall_time: np.ndarray  # float64 per record
    step: np.ndarray  # int64 per record
    record: np.ndarray  # per value: the record it is in (ascending)
    tag: np.ndarray  # per value: an index into tags
    value: np.ndarray  # per value: its simple_value, float32 as float64
    tags: list[str]


def _gather(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """``buf[a:a + width]`` for every a of ``at`` as rows (bytes past the end of ``buf`` read as 0)."""
    idx = at[:, None] + np.arange(width)
    return np.where(idx < len(buf), buf[np.minimum(idx, len(buf) - 1)], 0).astype(np.uint8)


def _varints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The varints starting at ``at`` as protobuf reads them (their low 64 bits), their lengths, and whether each
    ends within 10 bytes."""
    b = _gather(buf, at, 10)
    last = b < 0x80
    ends = last.any(axis=1)
    length = np.argmax(last, axis=1) + 1
    groups = (b & 0x7F).astype(np.uint64) * (np.arange(10) < length[:, None])
    value = np.bitwise_or.reduce(groups << (np.uint64(7) * np.arange(10, dtype=np.uint64)), axis=1)
    return value, length, ends


def scalar_records(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> ScalarRecords:
    """Decode at once every record (payload ``buf[s:s + n]``) that is an Event of a wall time, a step and a summary
    of simple values and nothing else — what TensorBoard's writers make of scalars. Any other record (a file
    version, a session log, a histogram, text, a value with metadata, bytes that are no event) is left ``ok=False``
    for tensorboard's Event class. Tested against that class on generated events and bytes."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    n, big = len(starts), np.int64(1) << 40
    buf = buf if len(buf) else np.zeros(1, dtype=np.uint8)  # nothing to read: every index is past the end
    end = starts + lengths
    byte = lambda at: np.where(at < end, buf[np.minimum(at, len(buf) - 1)], -1)  # noqa: E731 — -1 past the record

    def varint(at):
        value, length, ends = _varints(buf, at)
        fits = ends & (at + length <= end)
        return np.minimum(value, np.uint64(big)).astype(np.int64), at + length, fits

    ok = (lengths >= 9) & (byte(starts) == _WALL_TIME)
    wall = _gather(buf, starts + 1, 8).copy().view("<f8").reshape(-1) if n else np.zeros(0)
    q = starts + 9
    has_step = byte(q) == _STEP
    raw, length, ends = _varints(buf, q + 1)
    ok &= ~has_step | (ends & (q + 1 + length <= end))
    step = np.where(has_step, raw.view(np.int64), 0)
    q = np.where(has_step, q + 1 + length, q)
    ok &= byte(q) == _SUMMARY
    size, q, fits = varint(q + 1)
    ok &= fits & (q + size == end)
    records, tag_at, tag_len, values = [], [], [], []
    active = ok & (q < end)
    while active.any():
        ok &= ~active | (byte(q) == _VALUE)
        size, v, fits = varint(q + 1)
        v_end = v + size
        ok &= ~active | (fits & (v_end <= end))
        has_tag = byte(v) == _TAG
        t_len, t, fits = varint(v + 1)
        ok &= ~active | ~has_tag | fits
        t, t_len = np.where(has_tag, t, v), np.where(has_tag, t_len, 0)
        j = t + t_len
        ok &= ~active | ((j + 5 == v_end) & (byte(j) == _SIMPLE_VALUE))
        take = active & ok
        records.append(np.flatnonzero(take))
        tag_at.append(t[take])
        tag_len.append(t_len[take])
        values.append(_gather(buf, j[take] + 1, 4).copy().view("<f4").reshape(-1).astype(np.float64))
        q = np.where(active, v_end, q)
        active = ok & (q < end)
    record = np.concatenate(records) if records else np.zeros(0, dtype=np.int64)
    tag_at = np.concatenate(tag_at) if tag_at else np.zeros(0, dtype=np.int64)
    tag_len = np.concatenate(tag_len) if tag_len else np.zeros(0, dtype=np.int64)
    value = np.concatenate(values) if values else np.zeros(0)
    # the tags: distinct byte strings decoded once (UTF-8, strictly, as protobuf checks a string field)
    width = int(tag_len.max(initial=0))
    rows = _gather(buf, tag_at, width) * (np.arange(width) < tag_len[:, None])
    distinct, tag = distinct_rows(np.concatenate([tag_len.astype("<i8").view(np.uint8).reshape(-1, 8), rows], axis=1))
    tags: list[str] = []
    undecodable = np.zeros(len(distinct), dtype=bool)
    for k, key in enumerate(distinct):
        length = int(key[:8].view("<i8")[0])
        try:
            tags.append(key[8:8 + length].tobytes().decode("utf-8"))
        except UnicodeDecodeError:
            tags.append("")
            undecodable[k] = True
    if undecodable.any():
        ok[record[undecodable[tag]]] = False
    keep = ok[record]
    order = np.argsort(record[keep], kind="stable")
    return ScalarRecords(ok, wall, step, record[keep][order], tag[keep][order], value[keep][order], tags)


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)`` (the distinct rows, in some order, and each row's index among
    them) by a 64-bit hash of each row, checked: sorting bytes rows directly costs ~10 ms per thousand."""
    h = np.zeros(len(rows), dtype=np.uint64)
    for column in rows.T:  # FNV-1a, over the row's bytes
        h = (h ^ column) * np.uint64(0x100000001B3)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    if not np.array_equal(rows[first][inverse], rows):  # two rows with one hash: sort the rows themselves
        distinct, inverse = np.unique(rows, axis=0, return_inverse=True)
        return distinct, inverse.reshape(-1)
    return rows[first], inverse.reshape(-1)


def scalar_event(payload: bytes) -> tuple[float, int, list[tuple[str, float]]] | None:
    """One record through ``scalar_records``: (wall_time, step, [(tag, simple_value), ...]), or None for a record
    it leaves to tensorboard's Event class."""
    got = scalar_records(np.frombuffer(payload, dtype=np.uint8), np.array([0]), np.array([len(payload)]))
    if not got.ok[0]:
        return None
    return (float(got.wall_time[0]), int(got.step[0]),
            [(got.tags[t], float(v)) for t, v in zip(got.tag.tolist(), got.value.tolist())])


def write_scalar_events(run_dir: Path, tag: str, steps: Iterable[int], values: Iterable[float],
                        wall_time: float | None = None) -> Path:
    """Write one scalar's points as a new event file of ``run_dir`` in one go, the records TensorBoard's own writer
    would make (``SummaryWriter.add_scalar``: a ``file_version`` event, then an Event with ``simple_value`` per
    point, framed with the masked CRC32Cs of ``masked_crc32c``), at every point the same ``wall_time`` (default:
    now). A writer that makes each record in Python and reopens its file per flush takes minutes for the 1.6 M
    points of an archived sweep; this encodes every record at once with NumPy. Returns the file's path. Tested:
    ``read_scalars`` and TensorBoard's EventAccumulator read back the points, and its bytes equal a record-by-record
    encoding by tensorboard's Event class."""
    import socket
    import time

    from tensorboard.compat.proto.event_pb2 import Event

    wall = time.time() if wall_time is None else float(wall_time)
    steps = np.asarray(list(steps) if not isinstance(steps, np.ndarray) else steps, dtype=np.int64).reshape(-1)
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).reshape(-1)
    # an Event's bytes: wall time | step (none at step 0) | summary header | the value's tag | its float
    head = np.frombuffer(bytes([_WALL_TIME]) + struct.pack("<d", wall), dtype=np.uint8)
    tag_b = tag.encode("utf-8")
    value_msg = bytes([_TAG]) + _varint_of(len(tag_b)) + tag_b + bytes([_SIMPLE_VALUE])  # + 4 bytes of float
    summary = bytes([_VALUE]) + _varint_of(len(value_msg) + 4) + value_msg
    mid = np.frombuffer(bytes([_SUMMARY]) + _varint_of(len(summary) + 4) + summary, dtype=np.uint8)
    step_b, step_n = varint_bytes(steps)
    step_n = np.where(steps != 0, step_n + 1, 0)  # the field's key byte, or nothing
    step_b = np.concatenate([np.full((len(steps), 1), _STEP, dtype=np.uint8), step_b], axis=1)
    float_b = values.astype("<f4").view(np.uint8).reshape(-1, 4)
    rows = np.concatenate([np.broadcast_to(head, (len(steps), len(head))), step_b,
                           np.broadcast_to(mid, (len(steps), len(mid))), float_b], axis=1)
    kept = np.concatenate([np.ones((len(steps), len(head)), bool), np.arange(11) < step_n[:, None],
                           np.ones((len(steps), len(mid) + 4), bool)], axis=1)
    first = Event(wall_time=wall, file_version="brain.Event:2").SerializeToString()
    lengths = np.concatenate([[len(first)], len(head) + step_n + len(mid) + 4]).astype(np.int64)
    body = np.concatenate([np.frombuffer(first, dtype=np.uint8), rows[kept]])
    size = _HEADER + _CRC + lengths + _CRC
    starts = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    buf = np.zeros(int(size.sum()), dtype=np.uint8)
    header = np.frombuffer(lengths.astype("<u8").tobytes(), dtype=np.uint8).reshape(-1, _HEADER)
    buf[(starts[:, None] + np.arange(_HEADER)).ravel()] = header.ravel()
    body_at = np.repeat(starts + _HEADER + _CRC - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    buf[body_at + np.arange(len(body))] = body
    for at, crc in ((starts + _HEADER, masked_crc32c(buf, starts, np.full(len(starts), _HEADER))),
                    (starts + _HEADER + _CRC + lengths, masked_crc32c(buf, starts + _HEADER + _CRC, lengths))):
        buf[(at[:, None] + np.arange(_CRC)).ravel()] = np.frombuffer(crc.astype("<u4").tobytes(), dtype=np.uint8)
    path = Path(run_dir) / f"events.out.tfevents.{int(wall):010d}.{socket.gethostname()}.{os.getpid()}.0"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return path


def _varint_of(n: int) -> bytes:
    b, k = varint_bytes(np.array([n]))
    return b[0, :k[0]].tobytes()


class Framed(NamedTuple):
    """One event file's bytes and its whole records: where each payload starts and how long it is."""

    data: bytes
    starts: np.ndarray  # int64: the first byte of each payload (its record's framing begins 12 bytes before)
    lengths: np.ndarray  # int64
    damage: Damage | None  # where the file stops being whole (None: it is)

    def payload(self, k: int) -> bytes:
        return self.data[int(self.starts[k]):int(self.starts[k] + self.lengths[k])]


def framed_records(path: Path) -> Framed:
    """The records of one event file, every one verified against the CRCs of its framing, and where the file stops
    being whole. Nothing from a bad record on is returned: a length that fails its checksum leaves no way to find
    the next record, and the records after damage are not the writer's."""
    data = path.read_bytes()
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, lengths = [], []
    i, end = 0, len(data)
    unpack_length = struct.Struct("<Q").unpack_from
    while i + _HEADER + _CRC <= end:
        (length,) = unpack_length(data, i)
        if i + _HEADER + _CRC + length + _CRC > end:
            break
        starts.append(i)
        lengths.append(length)
        i += _HEADER + _CRC + length + _CRC
    damage_at, kind = (i, "cut") if i < end else (None, None)
    if damage_at is not None and i + _HEADER + _CRC <= end:  # a length beyond the file: garbage, if it fails its CRC
        head = masked_crc32c(buf, np.array([i]), np.array([_HEADER]))[0]
        if head != struct.unpack_from("<I", data, i + _HEADER)[0]:
            kind = "checksum"
    st, ln = np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64)
    stored = lambda at: _gather(buf, at, _CRC).copy().view("<u4").reshape(-1)  # noqa: E731
    bad = (masked_crc32c(buf, st, np.full(len(st), _HEADER)) != stored(st + _HEADER)) | \
          (masked_crc32c(buf, st + _HEADER + _CRC, ln) != stored(st + _HEADER + _CRC + ln))
    good = len(st) if not bad.any() else int(np.argmax(bad))
    if good < len(st):
        damage_at, kind = int(st[good]), "checksum"
    return Framed(data, st[:good] + _HEADER + _CRC, ln[:good],
                  Damage(path, damage_at, kind, good) if damage_at is not None else None)


def read_event_file(path: Path) -> tuple[list[Any], Damage | None]:
    """The Event records of one file (``framed_records``, each decoded by tensorboard's Event class), and where the
    file stops being whole (None: it is); a record whose checksums hold but which is no Event ends it as
    'undecodable'."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    framed = framed_records(path)
    events = []
    for k in range(len(framed.starts)):
        try:
            events.append(Event.FromString(framed.payload(k)))
        except DecodeError:
            return events, Damage(path, int(framed.starts[k]) - _HEADER - _CRC, "undecodable", k)
    return events, framed.damage


def read_scalars(path: str | Path, tags: Iterable[str] | None = None,
                 damage: list[Damage] | None = None) -> dict[str, Scalars]:
    """tag → every point of that scalar (all tags, or only ``tags``), from a run folder's event files or one file,
    as TensorBoard's EventAccumulator keeps them with no sampling: files in name order, and the purges it makes
    (a session-start record at step s, which a resumed run writes, drops every point at step ≥ s; in files
    older than event format 2, a summary whose step goes back drops its own tags' points at that step and
    after). The records of scalars are decoded all at once (``scalar_records``), the rest by tensorboard's Event
    class: many times faster than the accumulator, which converts every event for all its plugins; reports read
    every run of a sweep. Tested against the accumulator, purges included.

    Every record is verified against its CRCs (``framed_records``): a file is read up to its first bad record,
    and where one stops early the ``Damage`` is appended to ``damage`` — or, without that list, warned about in
    one line — so that a reader of numbers can refuse to score a damaged run instead of scoring what is left."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    wanted = None if tags is None else set(tags)
    points: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}  # tag → chunks of (steps, values, walls)
    file_version: float | None = None
    most_recent_step = -1

    def add(tag: str, steps, values, walls) -> None:
        if wanted is None or tag in wanted:
            points.setdefault(tag, []).append((np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64),
                                               np.asarray(walls, dtype=np.float64)))

    def purge(step: int, tags: Iterable[str] | None = None) -> None:  # drop the points at ``step`` and after
        for tag in points.keys() if tags is None else set(tags) & points.keys():
            points[tag] = [(s[s < step], v[s < step], w[s < step]) for s, v, w in points[tag]]

    for f in event_files(path):
        framed = framed_records(f)
        bad = framed.damage
        fast = scalar_records(np.frombuffer(framed.data, dtype=np.uint8), framed.starts, framed.lengths)
        slow = np.flatnonzero(~fast.ok).tolist()
        first = 0
        for k in [*slow, len(framed.starts)]:
            lo, hi = np.searchsorted(fast.record, [first, k])  # the values of the scalar records first..k-1
            rec, tag, value = fast.record[lo:hi], fast.tag[lo:hi], fast.value[lo:hi]
            if file_version and file_version >= 2:
                for t in np.unique(tag).tolist():
                    at = rec[tag == t]
                    add(fast.tags[t], fast.step[at], value[tag == t], fast.wall_time[at])
            else:  # an old file's purges go record by record
                for r in range(first, k):
                    step, mine = int(fast.step[r]), slice(*np.searchsorted(rec, [r, r + 1]))
                    names = [fast.tags[t] for t in tag[mine].tolist()]
                    if step < most_recent_step:
                        purge(step, names)
                    else:
                        most_recent_step = step
                    for name, v in zip(names, value[mine].tolist()):
                        add(name, [step], [v], [fast.wall_time[r]])
            if k == len(framed.starts):
                break
            try:
                event = Event.FromString(framed.payload(k))
            except DecodeError:
                bad = Damage(f, int(framed.starts[k]) - _HEADER - _CRC, "undecodable", k)
                break
            first = k + 1
            if event.HasField("file_version"):
                try:
                    file_version = float(event.file_version.split("brain.Event:")[-1])
                except ValueError:
                    file_version = None
            if file_version and file_version >= 2:
                if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                    purge(event.step)
            elif event.step < most_recent_step and event.HasField("summary"):
                purge(event.step, (v.tag for v in event.summary.value))
            else:
                most_recent_step = event.step
            if event.HasField("summary"):
                for v in event.summary.value:
                    if v.HasField("simple_value"):
                        add(v.tag, [event.step], [v.simple_value], [event.wall_time])
        if bad is not None:
            if damage is None:
                warnings.warn(f"{bad}; the rest of the file is skipped", stacklevel=2)
            else:
                damage.append(bad)
    return {tag: Scalars(*(np.concatenate([c[i] for c in chunks]) for i in range(3))) if chunks else Scalars.empty()
            for tag, chunks in points.items()}
