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

from ppo_bench.common.atomic import atomic_torch_save, read_json, remove_temporaries, warn_damaged
from ppo_bench.common.errors import ConfigError, file_action

LOCK = ".lock"
CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
CORRUPT = "checkpoint.corrupt.pt"
NEW = f".{CHECKPOINT}.new"  # a checkpoint written whole, before it is renamed into place
EVENTS = "events.out.tfevents.*"
STATUS = "status.json"
STATUSES = ("running", "finished", "failed")


class RunLocks:
    """Exclusive locks on run folders (created if missing), all or none; a context manager."""

    def __init__(self, run_dirs: Iterable[str | os.PathLike]):
        self.dirs = [Path(d) for d in run_dirs]
        self.fds: list[int] = []

    def acquire(self) -> "RunLocks":
        twice = sorted({str(d) for d in self.dirs if self.dirs.count(d) > 1})
        if twice:  # a second lock of this process's own would wait for itself
            raise ConfigError(f"run folder {twice[0]} is named twice in one launch (two runs with one name); "
                              "give each run its own setting or seed")
        try:
            for d in self.dirs:
                with file_action("write", d):
                    d.mkdir(parents=True, exist_ok=True)
                fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    refuse_in_use(d, fd)
                os.ftruncate(fd, 0)
                stamp = datetime.datetime.now().isoformat(timespec="seconds")
                os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()} (since {stamp})\n".encode(), 0)
                self.fds.append(fd)
                finish_interrupted_writes(d)  # no other process writes here now
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


def refuse_in_use(run_dir: Path, fd: int) -> None:
    """The one line for a run folder whose lock another process holds (``fd``: its lock file, closed here)."""
    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
    os.close(fd)
    raise ConfigError(f"run folder {run_dir} is in use by {holder}; wait for it to end or stop it "
                      "(one process per run folder)") from None


def check_not_in_use(run_dirs: Iterable[str | os.PathLike]) -> None:
    """Refuse (``refuse_in_use``) a run folder another process holds, creating and writing nothing: what a launch
    checks before it reads a folder that a live process is changing (its checkpoint, its status)."""
    for d in run_dirs:
        try:
            fd = os.open(Path(d) / LOCK, os.O_RDONLY)
        except OSError:  # no lock file (no process ever held it), or one this process cannot open: RunLocks says
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            refuse_in_use(Path(d), fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def finish_interrupted_writes(run_dir: str | os.PathLike) -> None:
    """What a process killed mid-write (``kill -9``) left, put right by the next process to lock the folder: the
    temporary files of atomic writes removed, and a checkpoint written whole but not yet renamed into place
    (``save_checkpoint``) renamed when it is the newest (no ``checkpoint.pt``), removed when it is not."""
    run_dir = Path(run_dir)
    remove_temporaries(run_dir)
    new = run_dir / NEW
    if new.exists():
        if (run_dir / CHECKPOINT).exists():
            new.unlink()
        else:
            os.replace(new, run_dir / CHECKPOINT)


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether the run folder holds a checkpoint to resume from (the last one or the previous one)."""
    return (Path(run_dir) / CHECKPOINT).exists() or (Path(run_dir) / PREVIOUS).exists()


def event_files_in(run_dir: str | os.PathLike) -> list[Path]:
    return sorted(Path(run_dir).glob(EVENTS))


def read_status(run_dir: str | os.PathLike, required: Iterable[str] = ()) -> dict | None:
    """The run's status.json, checked: ``status`` one of running, finished, failed; the counts it holds
    (``global_step``, ``iteration``, ``step``, ``episodes_scored``) non-negative integers; ``score_last100`` and
    ``wall_s`` numbers. None when there is none, or — with a one-line warning naming the file and what is wrong —
    when it is damaged (``read_json``)."""
    path = Path(run_dir) / STATUS
    st = read_json(path)
    if st is None:
        return None
    problem = status_problem(st, required)
    if problem:
        warn_damaged(path, f"{path} is damaged ({problem}); ignored")
        return None
    return st


def status_problem(st: dict, required: Iterable[str] = ()) -> str | None:
    """What is wrong with a status.json's content, or None; ``required``: counts it must hold (the engine's
    ``global_step``, an LM run's ``step``)."""
    missing = [k for k in required if k not in st]
    if missing:
        return f"it has no {missing[0]}"
    if st.get("status") not in STATUSES:
        return f"status {st.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key in ("global_step", "iteration", "step", "episodes_scored"):
        v = st.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return f"{key} {v!r} is not a non-negative integer"
    for key in ("score_last100", "wall_s"):
        v = st.get(key, 0.0)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            return f"{key} {v!r} is not a number"
    return None


def fresh_start_problem(run_dir: str | os.PathLike, status_means_checkpointed: bool = False) -> str | None:
    """Why a fresh start may not clear ``run_dir``, or None when it may: clearing is only for what a process that
    died before its first checkpoint left (its event files, beside the identity it wrote first), never for what a
    checkpointed or finished run holds. Refused: a checkpoint; a status.json of a finished or failed run (or, with
    ``status_means_checkpointed``, any status.json: a command that writes one only with a checkpoint); a run's
    files without the identity.json or config.yaml that say whose they are."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return None
    checkpoints = [n for n in (CHECKPOINT, PREVIOUS, CORRUPT, NEW) if (run_dir / n).exists()]
    if checkpoints:
        return f"{run_dir} holds a run's checkpoint ({checkpoints[0]}); resume=true continues it"
    status = read_json(run_dir / STATUS) if (run_dir / STATUS).is_file() else None
    if (run_dir / STATUS).exists():
        state = status.get("status") if isinstance(status, dict) else None
        if state in ("finished", "failed"):
            return (f"{run_dir} holds a {state} run (its {STATUS}) without checkpoints; it is not replaced: "
                    "resume=true skips a finished run of the same settings")
        if status_means_checkpointed or state is None:
            return (f"{run_dir} holds a run that wrote checkpoints (its {STATUS}), which are gone; it is not "
                    "replaced")
    data = [p.name for p in event_files_in(run_dir)] + ([STATUS] if (run_dir / STATUS).exists() else [])
    if data and not ((run_dir / "identity.json").exists() or (run_dir / "config.yaml").exists()):
        return (f"{run_dir} holds a run's files ({', '.join(data[:2])}{', …' if len(data) > 2 else ''}) but no "
                "identity.json or config.yaml to say whose; it is not adopted")
    return None


REFUSED_REMEDY = "move that folder away, or choose another run_root"


def clear_run_files(run_dir: str | os.PathLike, names: Iterable[str] = (), status_means_checkpointed: bool = False) -> None:
    """Remove what a dead process left in a run folder that starts afresh: TensorBoard event files and the given
    files (status, identity). Refused (ConfigError, nothing removed) where ``fresh_start_problem`` finds a run that
    must not be deleted. Callers check the identity of what is left (the same settings) first."""
    problem = fresh_start_problem(run_dir, status_means_checkpointed)
    if problem:
        raise ConfigError(f"{problem}; {REFUSED_REMEDY}")
    run_dir = Path(run_dir)
    for path in [*run_dir.glob(EVENTS), *(run_dir / n for n in names)]:
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
        os.replace(last, Path(run_dir) / CORRUPT)


def save_checkpoint(state: dict, run_dir: str | os.PathLike) -> Path:
    """Write ``state`` (tensors and plain data) as the run's checkpoint; the one it replaces is kept as
    checkpoint.prev.pt. Each step is a rename, so a crash leaves a readable last or previous checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    tmp = run_dir / NEW
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
