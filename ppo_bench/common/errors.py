"""Errors the command line reports as one line, without a traceback, and the one path every command takes to
report them (``user_error_line``, ``run_command``).

Every command that reads or writes files (``ppo-bench``, ``ppo-bench-eval``, ``ppo-bench-report``, the archive
tool, ``ppo-bench-llm``, ``ppo-bench-llm-eval``) reports a bad option (``ConfigError``) and an operating-system
error a user can cause — a folder that cannot be written, a file that is a folder, a full disk, a name too long
— the same way: one line on stderr, ``error: cannot write <path>: <reason>``, exit code 2. Which errors those
are is decided here once (``os_error_line``), not at each call: an ``OSError`` that names a file, or whose errno
is one a user's path or disk causes. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import sys
from typing import Callable, Iterator

EXIT_USER_ERROR = 2
EXIT_OUTPUT_CLOSED = 1  # the reader of stdout went away (output_closed): Python's own exit code on EPIPE


class ConfigError(ValueError):
    """A bad option: the message names the option and the values it allows."""


class NonFiniteLoss(FloatingPointError):
    """A run's loss or parameters became NaN/inf; that run stops, its last good checkpoint stays."""


class RunsFailed(RuntimeError):
    """Some runs of a launch failed (a non-finite loss); the others finished. One line, exit code 1: raised,
    not exited, so that the other jobs of a Hydra multirun still run."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigErrors, so that a command reports them in its one line (exit code 2),
    and whose ``--version`` prints ppo-bench's version, as every command of ppo-bench does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from ppo_bench import __version__

        self.add_argument("--version", action="version", version=f"ppo-bench {__version__}")

    def error(self, message):
        raise ConfigError(message)


# errnos a user's paths, permissions, disk or file system cause (with or without a file name attached)
USER_OS_ERRORS = frozenset(getattr(errno, name) for name in (
    "ENOENT", "EROFS", "EACCES", "EPERM", "ENOSPC", "EDQUOT", "ENOTDIR", "EISDIR", "ENAMETOOLONG", "ELOOP",
    "EEXIST", "ENOTEMPTY", "EFBIG", "EMLINK", "EIO", "ENXIO", "ENODEV", "ESTALE", "EXDEV", "ETXTBSY", "EMFILE",
    "ENFILE", "EBUSY", "EINVAL", "EOVERFLOW") if hasattr(errno, name))
# errnos only a write raises: an error without a recorded action is a failed write
_WRITE_ERRNOS = frozenset(getattr(errno, n) for n in ("EROFS", "ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, n))


@contextlib.contextmanager
def file_action(action: str, path: str | os.PathLike, temporary: str | None = None) -> Iterator[None]:
    """An ``OSError`` raised inside says what was being done (``action``: 'read', 'write') and names ``path`` where
    the OS named no file (a full disk fails a ``write()`` on a descriptor) or named a temporary file of ours (whose
    name begins with ``temporary``): the user hears of the path they gave."""
    try:
        yield
    except OSError as e:
        ours = temporary is not None and e.filename is not None and \
            os.path.basename(os.fsdecode(e.filename)).startswith(temporary)
        if e.filename is None or ours:
            e.filename, e.filename2 = os.fspath(path), None
        if getattr(e, "action", None) is None:
            e.action = action
        raise


def os_error_line(ex: OSError, default_action: str | None = None) -> str | None:
    """'cannot write /runs/x: Read-only file system': the one line of an OSError a user can cause; None for
    another (a bug)."""
    if ex.errno not in USER_OS_ERRORS and ex.filename is None:
        return None
    reason = ex.strerror or (os.strerror(ex.errno) if ex.errno else "") or str(ex)
    action = getattr(ex, "action", None) or default_action or (
        "write" if ex.errno in _WRITE_ERRNOS else "read" if ex.errno == errno.ENOENT else "use")
    if ex.filename is None:
        return f"cannot {action} a file: {reason}"
    where = os.fsdecode(ex.filename) + (f" → {os.fsdecode(ex.filename2)}" if ex.filename2 else "")
    return as_line(f"cannot {action} {where}: {reason}")


def as_line(text: str) -> str:
    """``text`` on one line: a character that is not printable (a newline in a path a user gave) written as its
    escape, so that an error stays the one line it is promised to be."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def user_error_line(ex: BaseException, default_action: str | None = None) -> str | None:
    """The one line of an error a user caused — a ``ConfigError``, or an ``OSError`` of ``os_error_line``, raised
    or wrapped by a library (``raise ... from`` it) — or None (a bug: it keeps its traceback)."""
    seen = 0
    while ex is not None and seen < 8:
        if isinstance(ex, ConfigError):
            return as_line(ex)
        if isinstance(ex, OSError):
            line = os_error_line(ex, default_action)
            if line is not None:
                return line
        ex, seen = (ex.__cause__ if ex.__cause__ is not ex else None), seen + 1
    return None


def output_closed(ex: BaseException) -> bool:
    """Whether ``ex`` is the reader of this process's stdout having gone away (``ppo-bench --help | head -3``). If
    so, stdout is pointed at /dev/null, as the Python documentation advises (``signal``, "Note on SIGPIPE"), so that
    the interpreter's last flush at exit does not fail again; the command then ends quietly with exit code 1, as
    Python does on EPIPE. A broken pipe of anything else (stdout still writable) is not this."""
    if not isinstance(ex, BrokenPipeError):
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a descriptor
        return False
    if hasattr(select, "poll"):  # the write end of a pipe whose reader closed it polls as an error
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
            return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    return True


def run_command(main: Callable[[], int | None]) -> int:
    """Run a command's body: its exit code, or for an error a user caused its one line on stderr and exit code 2
    (for its output's reader gone, nothing more and exit code 1: ``output_closed``)."""
    try:
        return main() or 0
    except Exception as ex:  # noqa: BLE001 — only a user's error is caught; a bug is raised again
        if output_closed(ex):
            return EXIT_OUTPUT_CLOSED
        line = user_error_line(ex)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """Before the work whose result it will hold: make sure ``path`` (a file, or with ``folder`` a folder) can be
    written — its missing folders made, a file made and removed there, and the folders it made removed again, so
    that a launch refused later leaves no trace — so that the work is not done in vain; an ``OSError`` naming the
    path otherwise (``os_error_line``)."""
    import tempfile
    from pathlib import Path

    path = Path(path)
    where = path if folder else path.parent
    missing = []  # the folders this check makes, deepest first
    try:
        if not folder and path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        up = where.absolute()
        while not os.path.lexists(up) and up != up.parent:
            missing.append(up)
            up = up.parent
        try:
            where.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder of the path goes
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        fd, probe = tempfile.mkstemp(dir=where, prefix=".ppo-bench-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:  # named by the path the user gave, whatever part of it failed
        e.filename, e.filename2, e.action = str(path), None, "write"
        raise
    finally:
        for d in missing:
            try:
                d.rmdir()
            except OSError:  # not made after all, or another process wrote there meanwhile: left as it is
                break
