"""TensorBoard logging per run (docs: "Outputs and TensorBoard"): one directory per run, scalars, and the
HParams plugin; and reading a run's scalars back as TensorBoard shows them (``read_scalars``)."""

from __future__ import annotations

import struct
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

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


def wait_to_sort_last(run_dir: Path) -> None:
    """Return once a new event file of ``run_dir`` will sort after its existing ones. TensorBoard reads a run's
    event files in name order, and a name begins with its creation second: a resumed run's file created in the
    same second as the killed process's would be ordered by the names' counters ('…10' before '…9'), and the
    killed process's events past the checkpoint would be read after the purge marker, not hidden. Waits at
    most until the next second, and only then."""
    fields = [p.name.split(".") for p in Path(run_dir).glob("events.out.tfevents.*")]
    stamps = [int(f[3]) for f in fields if len(f) > 3 and f[3].isdigit()]
    while stamps and int(time.time()) <= max(stamps):
        time.sleep(0.02)


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
        wait_to_sort_last(run_dir)
        self.writer = SummaryWriter(log_dir=str(run_dir), flush_secs=30, purge_step=purge)
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


def _events(path: Path) -> Iterator[Any]:
    """The Event records of one file (TFRecord framing: length, its CRC, the record, its CRC). A record cut short
    (a writer still writing, or killed mid-record) ends the file, as it does for TensorBoard's reader."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    data = path.read_bytes()
    i = 0
    while i + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, i)
        start, end = i + 12, i + 12 + length
        if end + 4 > len(data):
            return
        try:
            yield Event.FromString(data[start:end])
        except DecodeError:
            warnings.warn(f"{path}: an unreadable record at byte {i}; the rest of the file is skipped", stacklevel=2)
            return
        i = end + 4


def read_scalars(path: str | Path, tags: Iterable[str] | None = None) -> dict[str, Scalars]:
    """tag → every point of that scalar (all tags, or only ``tags``), from a run folder's event files or one file,
    as TensorBoard's EventAccumulator keeps them with no sampling: files in name order, and the purges it makes
    (a session-start record at step s, which a resumed run writes, drops every point at step ≥ s; in files
    older than event format 2, a summary whose step goes back drops its own tags' points at that step and
    after). About 20 times faster than the accumulator, which converts every event for all its plugins: reports
    read every run of a sweep. Tested against the accumulator, purges included."""
    from tensorboard.compat.proto.event_pb2 import SessionLog

    wanted = None if tags is None else set(tags)
    points: dict[str, list[tuple[int, float, float]]] = {}
    file_version: float | None = None
    most_recent_step = -1
    for f in event_files(path):
        for event in _events(f):
            if event.HasField("file_version"):
                try:
                    file_version = float(event.file_version.split("brain.Event:")[-1])
                except ValueError:
                    file_version = None
            if file_version and file_version >= 2:
                if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                    points = {t: [p for p in ps if p[0] < event.step] for t, ps in points.items()}
            elif event.step < most_recent_step and event.HasField("summary"):
                for tag in {v.tag for v in event.summary.value} & points.keys():
                    points[tag] = [p for p in points[tag] if p[0] < event.step]
            else:
                most_recent_step = event.step
            if event.HasField("summary"):
                for v in event.summary.value:
                    if v.HasField("simple_value") and (wanted is None or v.tag in wanted):
                        points.setdefault(v.tag, []).append((event.step, v.simple_value, event.wall_time))
    return {tag: Scalars(np.array([p[0] for p in ps], dtype=np.int64), np.array([p[1] for p in ps], dtype=np.float64),
                         np.array([p[2] for p in ps], dtype=np.float64)) for tag, ps in points.items()}
