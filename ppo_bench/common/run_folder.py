"""What guards a run folder: one process at a time, checkpoints kept two deep and read as data.

- ``RunLocks``: an OS lock (``fcntl.flock``) on ``<run>/.lock`` per run folder, held while a process
  trains the run; it dies with its process, so a killed run is never locked out. A second process is
  refused in one line naming the holder (pid, host, start time).
- ``save_checkpoint``: the new checkpoint replaces ``checkpoint.pt`` atomically and the one it replaces
  becomes ``checkpoint.prev.pt``; ``load_last_good`` reads the last one and falls back to the previous
  one, with a one-line warning, when the last is unreadable.
- Checkpoints are loaded with ``torch.load(weights_only=True)``: tensors and plain Python data only, no
  code runs while reading one (a checkpoint from someone else is data, not a program).

Nothing here knows about PPO: both command lines use it.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from ppo_bench.common.atomic import atomic_torch_save
from ppo_bench.common.errors import ConfigError

LOCK = ".lock"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
EVENTS = "events.out.tfevents.*"


class RunLocks:
    """Exclusive locks on run folders (created if missing), all or none; a context manager."""

    def __init__(self, run_dirs: Iterable[str | os.PathLike]):
        self.dirs = [Path(d) for d in run_dirs]
        self.fds: list[int] = []

    def acquire(self) -> "RunLocks":
        try:
            for d in self.dirs:
                d.mkdir(parents=True, exist_ok=True)
                fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                    os.close(fd)
                    raise ConfigError(f"run folder {d} is in use by {holder}; wait for it to end or stop it "
                                      "(one process per run folder)") from None
                os.ftruncate(fd, 0)
                stamp = datetime.datetime.now().isoformat(timespec="seconds")
                os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} (since {stamp})\n".encode(), 0)
                self.fds.append(fd)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)  # closing the descriptor releases the lock
        self.fds = []

    def __enter__(self) -> "RunLocks":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether the run folder holds a checkpoint to resume from (the last one or the previous one)."""
    return (Path(run_dir) / CHECKPOINT).exists() or (Path(run_dir) / PREVIOUS).exists()


def clear_run_files(run_dir: str | os.PathLike, names: Iterable[str] = ()) -> None:
    """Remove what a dead process left in a run folder that starts afresh: TensorBoard event files,
    checkpoints and the given files (status, identity)."""
    run_dir = Path(run_dir)
    for path in [*run_dir.glob(EVENTS), run_dir / CHECKPOINT, run_dir / PREVIOUS, *(run_dir / n for n in names)]:
        path.unlink(missing_ok=True)


def to_data(obj: Any) -> Any:
    """NumPy arrays (and scalars) inside nested dicts, lists and tuples as tensors (and Python numbers): what
    ``torch.load(weights_only=True)`` reads back without unpickling NumPy objects."""
    import numpy as np
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_data(v) for v in obj)
    return obj


def set_aside(run_dir: str | os.PathLike) -> None:
    """After a fall back to the previous checkpoint: the unreadable last one becomes checkpoint.corrupt.pt,
    so the next save does not rotate it over the good previous one."""
    last = Path(run_dir) / CHECKPOINT
    if last.exists():
        os.replace(last, last.with_suffix(".corrupt.pt"))


def save_checkpoint(state: dict, run_dir: str | os.PathLike) -> Path:
    """Write ``state`` (tensors and plain data) as the run's checkpoint; the one it replaces is kept as
    checkpoint.prev.pt. Each step is a rename, so a crash leaves a readable last or previous checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    tmp = run_dir / f".{CHECKPOINT}.new"
    atomic_torch_save(state, tmp)
    if path.exists():
        os.replace(path, run_dir / PREVIOUS)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike, check: Callable[[Any], None] | None = None,
                    what: str = "checkpoint") -> dict:
    """One checkpoint file (or another file of a run's saved state: ``what``) as data
    (``torch.load(weights_only=True)``, on the CPU); ``check(state)`` may raise to reject its content.
    Unreadable: a ConfigError naming the file."""
    try:
        return _read(Path(path), check)
    except Exception as e:  # torch.load raises many types on a damaged file: zip, pickle, EOF, OS errors
        raise ConfigError(f"{what} {path} is unreadable ({_why(e)})") from None


def _numpy_globals() -> list:
    """What rebuilding a NumPy array or scalar needs (checkpoints of ppo-bench before tensors-only ones hold
    them): constructors of arrays of plain dtypes, which run no other code."""
    import numpy as np

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    dtypes = [getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "BoolDType", "Int64DType", "Int32DType")
              if hasattr(np, "dtypes") and hasattr(np.dtypes, n)]
    return [core._reconstruct, core.scalar, np.ndarray, np.dtype, *dtypes]


def _read(path: Path, check: Callable[[Any], None] | None) -> dict:
    import torch

    with torch.serialization.safe_globals(_numpy_globals()):
        state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, dict):
        raise ValueError(f"holds a {type(state).__name__}, not a checkpoint")
    if check is not None:
        check(state)
    return state


def _why(e: BaseException) -> str:
    if "weights_only" in str(e) or "Unsupported global" in str(e):
        return (f"{type(e).__name__}: it holds objects other than tensors, NumPy arrays and plain data (not a "
                "ppo-bench checkpoint), which are not loaded since loading them could run code")
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {(text[0] if text else '').split('. ')[0][:160]}"


def load_last_good(run_dir: str | os.PathLike,
                    check: Callable[[Any], None] | None = None) -> tuple[dict, Path] | tuple[None, None]:
    """(state, its file): the run's last checkpoint, or its previous one (with a one-line warning on stderr)
    when the last is unreadable; (None, None) when it has neither. ``check(state)`` may raise to reject a
    checkpoint's content. Neither readable: a ConfigError naming the file. Reads only."""
    run_dir = Path(run_dir)
    last, prev = run_dir / CHECKPOINT, run_dir / PREVIOUS
    if not last.exists() and not prev.exists():
        return None, None
    errors = []
    for path in (last, prev):
        if not path.exists():
            continue
        try:
            state = _read(path, check)
        except Exception as e:  # torch.load raises many types on a damaged file: zip, pickle, EOF, OS errors
            errors.append((path, _why(e)))
            continue
        if path == prev:
            bad = f"{errors[0][0]} is unreadable ({errors[0][1]})" if errors else f"{last} is missing"
            print(f"warning: {bad}; continuing from the previous checkpoint {prev}", file=sys.stderr, flush=True)
        return state, path
    path, why = errors[0]
    also = f" (and the previous one, {errors[1][0]}: {errors[1][1]})" if len(errors) > 1 else ""
    raise ConfigError(f"checkpoint {path} is unreadable ({why}){also}; move the run folder away, or delete the "
                      "checkpoint to start that run afresh")
