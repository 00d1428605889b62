"""Crash-safe file writes: write to a temporary name in the same folder, then rename. The file gets the
permissions the umask gives any new file, as open() would, not mkstemp's owner-only 0600. ``read_json`` is
their reader for a run's small JSON files (status, summary, evaluations)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ppo_bench.common.errors import file_action


def _umask() -> int:
    """The process's umask (os.umask sets it and returns the old one: set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TEMPORARY = ".{name}.*.tmp"  # the names of the temporary files (``remove_temporaries``)


def _atomic_write(path: str | os.PathLike, fill: Callable[[BinaryIO], Any]) -> Path:
    """``fill(f)`` writes the content into a temporary file beside ``path``, which then replaces it. An OSError
    names ``path`` (``file_action``): a full disk fails a write on a descriptor, which names no file."""
    path = Path(path)
    with file_action("write", path, temporary=f".{path.name}."):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the user's group
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that writers killed mid-write (``kill -9``) left in ``folder``; returns them.
    Only for a folder no other process writes (a run folder, under its lock)."""
    left = sorted(Path(folder).glob(TEMPORARY.format(name="*")))
    for p in left:
        p.unlink(missing_ok=True)
    return left


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save streamed into the temporary file: no copy of the serialised object in memory (an LM checkpoint, the
    model and its optimiser state, was the largest allocation of a run when it went through a bytes buffer)."""
    import torch

    def fill(f: BinaryIO) -> None:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch wraps the file's own error (a full disk) in its writer's
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise

    return _atomic_write(path, fill)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else ""


_WARNED: set[tuple] = set()


def warn_damaged(path: str | os.PathLike, message: str) -> None:
    """``warning: <message>`` on stderr, once per file as it is now (its path, size and modification time): a
    launch reads a run's files more than once (before and after it locks the folder), and says so once."""
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, message)
    except OSError:
        key = (os.path.abspath(path), message)
    if key not in _WARNED:
        _WARNED.add(key)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in a file written by ``atomic_write_text``, or None when there is none: the file is missing,
    or it is unreadable or not a JSON object. The writers never leave a partial file, so the second case is damage
    from outside; it gets a one-line warning on stderr, and callers treat the file as absent (a run whose status
    is lost resumes from its checkpoint and writes it again)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError and UnicodeDecodeError
        warn_damaged(path, f"{path} is unreadable ({type(e).__name__}: {_first_line(e)}); ignored")
        return None
    if not isinstance(data, dict):
        warn_damaged(path, f"{path} holds a JSON {type(data).__name__}, not an object; ignored")
        return None
    return data
