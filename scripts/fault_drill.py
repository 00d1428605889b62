"""The fault drill: every fault a run can meet, provoked on small runs, and what the command line did.

``python scripts/fault_drill.py`` runs the battery (``SCENARIOS``) and writes ``results/faults.md``: per
fault, the commands, the outcome seen (exit code and what stderr said), what was lost, and — where a resume
repairs the fault — whether the resumed run is bit-identical to a run never interrupted (every tensor and
number of the final checkpoint but the wall time, every logged scalar but ``perf/*``). Each row is judged
from what its commands did in this drill against what the README ("Outputs, TensorBoard, resume") promises:
bad input and refusals are one line on stderr starting ``error:``, exit code 2, no traceback, nothing
written; an interrupted run resumes bit for bit. A row that does not hold fails, and the script exits 1.

The commands run in a fresh folder, shown as ``$D``. ``ppo-bench`` and ``ppo-bench-llm`` are the console
scripts' entry points (``ppo_bench.rl.cli:main``, ``ppo_bench.llm.cli:main``), each command its own process:
forked from the drill's process, which imported ppo_bench once (``--spawn``: a fresh ``python -m`` per
command, ~4 s of CPU more each for the imports). The read-only run folder and the full disk are made in a
private mount namespace (``unshare --mount --map-root-user``, util-linux): a read-only bind mount (chmod
does not stop root) and a small tmpfs; nothing outside the command sees them.
"""

from __future__ import annotations

import datetime
import importlib
import math
import os
import pickle
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ppo_bench.common.atomic import read_json
from ppo_bench.common.errors import OneLineArgumentParser
from ppo_bench.rl.engine.trainer import TIMING_KEYS

REPO = Path(__file__).resolve().parent.parent
COMMAND = "python scripts/fault_drill.py"
PROGRAMS = {"ppo-bench": "ppo_bench.rl.cli", "ppo-bench-llm": "ppo_bench.llm.cli", "ppo-bench-eval": "ppo_bench.rl.evaluate",
            "ppo-bench-report": "ppo_bench.analysis.report", "ppo-bench-llm-eval": "ppo_bench.llm.evaluate_run"}

# the small run every resume is compared with: 16 iterations of 256 steps, a checkpoint after each
SMALL = ("env=inverted_pendulum", "algo.num_steps=256", "algo.minibatch_size=64", "algo.epochs=2",
         "total_timesteps=4096")
STEPS_PER_ITER = 256
RUN = "InvertedPendulum-v5/clip_eps0.2/seed0"  # its folder under run_root
TINY = ("env=inverted_pendulum", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=1",
        "total_timesteps=128")  # bad-input commands: if one trains after all, it costs nothing
LLM_TINY = ("model=tiny", "task=reverse", "task.n_eval=8", "eval.every=0", "eval.max_new_tokens=8",
            "algo.max_completion_length=8", "save_model=false")


def merged(base, *extra: str) -> list[str]:
    """A command line with ``extra`` overrides: one that sets a key of ``base`` replaces it there."""
    key = lambda a: a.split("=", 1)[0].lstrip("+~") if "=" in a else None  # noqa: E731
    keys = {key(e) for e in extra} - {None}
    return [b for b in base if key(b) not in keys] + list(extra)


# ----------------------------------------------------------------------------------------- commands
@dataclass
class Outcome:
    """A finished command: its exit code (-N: killed by signal N), output and CPU time."""

    command: str
    code: int
    out: str
    err: str
    seconds: float
    cpu_s: float

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err

    def one_line_error(self) -> str | None:
        """None when the command ended as a user error should (one stderr line ``error: …``, exit 2, no
        traceback); else what differed."""
        why = []
        if self.code != 2:
            why.append(f"exit code {self.code}, not 2")
        if len(self.lines) != 1:
            why.append(f"{len(self.lines)} lines on stderr, not 1")
        elif not self.lines[0].startswith("error:"):
            why.append("its line does not start with 'error:'")
        if self.traceback:
            why.append("a traceback")
        return "; ".join(why) or None

    def said(self) -> str:
        """The outcome in a table cell: exit code and stderr (its line, or how many lines and the first/last)."""
        ended = f"killed by {signal.Signals(-self.code).name}" if self.code < 0 else f"exit {self.code}"
        lines = self.lines
        if not lines:
            return f"{ended}, nothing on stderr"
        if len(lines) == 1:
            return f"{ended}: {code(lines[0])}"
        raised = [ln for ln in lines if re.match(r"[A-Za-z_][\w.]*(: |$)", ln)]  # "OSError: [Errno 28] ..."
        if self.traceback and raised:  # the exception's own line says most
            return (f"{ended}, {len(lines)} lines on stderr, a traceback: first {code(lines[0])} … "
                    f"the exception: {code(raised[-1])}")
        return f"{ended}, {len(lines)} lines on stderr: first {code(lines[0])} … last {code(lines[-1])}"


def clip(text: str, n: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= n else text[:n] + "…"


def code(text: str, n: int = 400) -> str:
    """Text as Markdown inline code (clipped to n characters); backticks inside it kept."""
    text = clip(text, n)
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _exit_code(code) -> int:
    """What the interpreter makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_entry_point(module: str, argv: list[str], cwd: Path, out: Path, err: Path, env: dict) -> None:
    """In a forked child: become ``<program> argv`` (stdin empty, stdout/stderr to files) and exit as the
    interpreter would, an uncaught exception printing its traceback."""
    code = 1
    try:
        os.chdir(cwd)
        for fd, path in ((1, out), (2, err)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        # the parent's streams may be anything (pytest's capture): write to the file descriptors
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = [argv[0], *argv[1:]]
        code = _exit_code(importlib.import_module(module).main())  # a Hydra app exits; the others return a code
    except SystemExit as e:
        code = _exit_code(e.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


class Process:
    """A command started by the drill: forked (the entry point in a child of this process) or spawned."""

    def __init__(self, drill: "Drill", argv: list[str], shown: str, spawn: bool):
        self.drill, self.shown = drill, shown
        n = drill.count = drill.count + 1
        self.out, self.err = drill.logs / f"{n:03d}.out", drill.logs / f"{n:03d}.err"
        env = drill.env()
        drill.processes.append(self)
        self.t0 = time.perf_counter()
        if spawn or argv[0] not in PROGRAMS:
            if argv[0] in PROGRAMS:
                argv = [sys.executable, "-m", PROGRAMS[argv[0]], *argv[1:]]
            with open(self.out, "wb") as fo, open(self.err, "wb") as fe:
                self.pid = subprocess.Popen(argv, cwd=drill.d, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                            env=env).pid
        else:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            pid = os.fork()
            if pid == 0:
                _run_entry_point(PROGRAMS[argv[0]], argv, drill.d, self.out, self.err, env)
            self.pid = pid
        self.result: Outcome | None = None

    def running(self) -> bool:
        if self.result is not None:
            return False
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._finish(status, usage)
        return False

    def send(self, sig: int) -> None:
        if self.running():
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> Outcome:
        deadline = time.monotonic() + (timeout or self.drill.timeout)
        while self.running():
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                _, status, usage = os.wait4(self.pid, 0)
                self._finish(status, usage, timed_out=True)
                break
            time.sleep(0.01)
        return self.result

    def _finish(self, status: int, usage, timed_out: bool = False) -> None:
        err = self.err.read_text(errors="replace")
        if timed_out:
            err += f"\n(the drill killed it after {self.drill.timeout:.0f} s)"
        self.result = Outcome(self.shown, os.waitstatus_to_exitcode(status), self.out.read_text(errors="replace"),
                              err, time.perf_counter() - self.t0, usage.ru_utime + usage.ru_stime)
        self.drill.cpu_s += self.result.cpu_s


def in_child(fn: Callable, *args):
    """fn(*args) computed in a forked child and returned through a pipe: the drill's own process never runs
    torch code, so that the commands it forks start from a process without torch's thread pools."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            data = pickle.dumps((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 — reported to the parent
            data = pickle.dumps((False, f"{type(e).__name__}: {e}"))
        with os.fdopen(write, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    ok, value = pickle.loads(data)
    if not ok:
        raise RuntimeError(value)
    return value


# ----------------------------------------------------------------------------------------- run folders
def snapshot(root: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[Path, bytes]:
    """Every file under root with its bytes (files named in ``skip`` left out): to check that a refused
    launch wrote nothing."""
    root = Path(root)
    if not root.exists():
        return {}
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def changed(before: dict[Path, bytes], after: dict[Path, bytes], base: Path) -> list[str]:
    """The files a command created, removed or rewrote, relative to base."""
    names = sorted(set(before) | set(after))
    return [str(p.relative_to(base)) for p in names if before.get(p) != after.get(p)]


def _state_differences(a, b, where: str) -> list[str]:
    import numpy as np
    import torch

    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in one" for k in sorted(set(a) ^ set(b), key=str)]
        for k in sorted(set(a) & set(b), key=str):
            if k not in TIMING_KEYS:  # they measure time, not what was trained
                out += _state_differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _state_differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [f"{where} differs"]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return [] if np.array_equal(a, b) else [f"{where} differs"]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def scalars(run_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run logged, per tag, as TensorBoard reads it (events a resumed run purged left out)."""
    from ppo_bench.common.tblog import read_scalars

    return {tag: list(zip(s.steps.tolist(), s.values.tolist())) for tag, s in read_scalars(run_dir).items()}


def run_differences(a: str | os.PathLike, b: str | os.PathLike) -> list[str]:
    """How two run folders differ in what was trained: every value of their last checkpoints (but the wall
    time) and every logged scalar (but perf/*, timings). Empty: bit-identical."""
    from ppo_bench.common.run_folder import CHECKPOINT, read_checkpoint

    out = _state_differences(read_checkpoint(Path(a) / CHECKPOINT), read_checkpoint(Path(b) / CHECKPOINT), "checkpoint")
    sa, sb = scalars(a), scalars(b)
    for tag in sorted(set(sa) | set(sb)):
        if tag.startswith("perf/"):
            continue
        if sa.get(tag) != sb.get(tag):
            out.append(f"scalar {tag}: {len(sa.get(tag, []))} vs {len(sb.get(tag, []))} points, not equal")
    return out


def identical(a: Path, b: Path) -> tuple[bool, str]:
    """(bit-identical?, a table cell saying so)."""
    try:
        diffs = in_child(run_differences, a, b)
    except RuntimeError as e:
        return False, f"no: {clip(str(e), 200)}"
    if diffs:
        return False, f"**no**: {len(diffs)} differences, e.g. {'; '.join(diffs[:3])}"
    return True, "yes (checkpoint and every scalar)"


def logged_steps(run_dir: Path, tag: str = "losses/policy") -> list[int]:
    return [s for s, _ in scalars(run_dir).get(tag, [])] if Path(run_dir).is_dir() else []


# ----------------------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One fault: its commands and outcome as Markdown snippets, and why it fails (empty: it holds)."""

    item: str  # the item number, a letter per case
    fault: str
    commands: list[str] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    lost: str = "—"
    identical: str = "—"
    failures: list[str] = field(default_factory=list)
    not_run: str | None = None  # why the drill could not provoke this fault here

    def expect(self, ok: bool, why: str) -> bool:
        if not ok:
            self.failures.append(why)
        return bool(ok)

    def ran(self, o: Outcome, note: str = "") -> Outcome:
        self.commands.append(f"`{o.command}`")
        self.outcome.append(f"{note}{o.said()}")
        return o

    def expect_one_line_error(self, o: Outcome, what: str = "") -> bool:
        why = o.one_line_error()
        return self.expect(why is None, f"{what}not one error line ({why})")

    @property
    def failing(self) -> bool:
        return bool(self.failures) and not self.not_run

    @property
    def result(self) -> str:
        if self.not_run:
            return f"not run: {self.not_run}"
        return "pass" if not self.failures else "**FAIL**: " + "; ".join(self.failures)


class Drill:
    """The drill's folder ($D), how its commands run, and the reference run resumed runs are compared with."""

    def __init__(self, workdir: Path, spawn: bool = False, timeout: float = 10800.0):
        self.d = Path(workdir).resolve()
        self.logs = self.d / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.spawn, self.timeout = spawn, timeout
        self.count, self.cpu_s = 0, 0.0
        self.processes: list[Process] = []
        self.llm_smoke_dir: Path | None = None  # the LM smoke run (11b), reused by 9 and 10b
        self._reference: tuple[Path, Outcome] | None = None
        self._unshare: bool | None = None
        if not spawn:  # what every forked ppo-bench command would import: once, here (no torch code runs here)
            for module in ("ppo_bench.rl.cli", "mujoco", "gymnasium.envs.mujoco.inverted_pendulum_v5"):
                try:
                    importlib.import_module(module)
                except ImportError:  # the command will say what is missing
                    pass

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        return env

    def shown(self, text: str) -> str:
        return text.replace(str(self.d), "$D").replace(shlex.quote(sys.executable), "python").replace(sys.executable, "python")

    def start(self, *argv: str, spawn: bool | None = None) -> Process:
        argv = list(argv)
        spawned = self.spawn if spawn is None else spawn
        shown = ["python", "-m", PROGRAMS[argv[0]], *argv[1:]] if spawned and argv[0] in PROGRAMS else argv
        return Process(self, argv, self.shown(shlex.join(shown)), spawned)

    def run(self, *argv: str, **kw) -> Outcome:
        return self.start(*argv, **kw).wait()

    def stop_all(self) -> None:
        """Kill what the drill started and is still running (after a scenario broke)."""
        for p in self.processes:
            if p.running():
                os.kill(p.pid, signal.SIGKILL)
                p.wait()

    def reference(self) -> tuple[Path, Outcome]:
        """The uninterrupted small run (``SMALL``, a checkpoint every iteration): what every resumed run must equal."""
        if self._reference is None:
            root = self.d / "reference"
            o = self.run("ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}")
            self._reference = (root / RUN, o)
        return self._reference

    def compare_with_reference(self, row: Row, run_dir: Path) -> None:
        ref, o = self.reference()
        if not row.expect(o.code == 0, f"the reference run failed ({o.said()})"):
            return
        same, text = identical(run_dir, ref)
        row.identical = text
        row.expect(same, "not bit-identical to the uninterrupted run")

    def unshare(self) -> bool:
        """Whether this machine lets the drill make a private mount namespace."""
        if self._unshare is None:
            try:
                self._unshare = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=60).returncode == 0
            except (OSError, subprocess.SubprocessError):
                self._unshare = False
        return self._unshare


UNSHARE = ("unshare", "--mount", "--map-root-user", "--propagation", "private")


def wait_for(proc: Process, ready: Callable[[], bool], poll: float = 0.005) -> bool:
    """Poll until ready() (True) or until the process ended (False)."""
    while proc.running():
        try:
            if ready():
                return True
        except Exception:  # noqa: BLE001 — a file caught half-written: look again
            pass
        time.sleep(poll)
    return False


def checkpointed(run_dir: Path, iteration: int) -> Callable[[], bool]:
    def ready() -> bool:
        st = read_json(run_dir / "status.json")
        return bool(st) and st["status"] == "running" and st["iteration"] >= iteration
    return ready


# ----------------------------------------------------------------------------------------- scenarios
def interrupt_and_resume(drill: Drill, sig: signal.Signals, item: str, also: bool = False) -> list[Row]:
    """A run stopped by ``sig`` once its second checkpoint is written, resumed by the command its message prints
    (kill -9: the README's ``resume=true``), compared with the uninterrupted run. With ``also`` (SIGTERM): while
    it trains, a second process on its folder (item 5); once stopped, relaunches with other settings (item 1)."""
    root = drill.d / f"signal-{sig.name.lower()}"
    run_dir = root / RUN
    base = ["ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}"]
    kill = f"kill -{sig.name[3:]}"
    what = {"SIGTERM": " (a cluster's preemption)", "SIGINT": " (Ctrl-C)", "SIGHUP": " (a dropped ssh session)"}.get(sig.name, "")
    row = Row(item, f"`{kill}`{what} in the middle of a run, then resume")
    rows = [row]
    proc = drill.start(*base)
    if not wait_for(proc, checkpointed(run_dir, 2)):
        row.ran(proc.wait())
        row.expect(False, "the run ended before the drill could signal it")
        return rows
    if also:
        rows.append(second_process(drill, proc, base, root))
    proc.send(sig)
    o = row.ran(proc.wait())
    row.commands.append(f"`{kill} <its pid>` once iteration 2 is checkpointed")
    expected = -sig if sig == signal.SIGKILL else 128 + sig
    row.expect(o.code == expected, f"exit code {o.code}, not {expected}")
    at = (read_json(run_dir / "status.json") or {}).get("global_step")
    logged = max(logged_steps(run_dir), default=0)
    if sig == signal.SIGKILL:
        resume, how = merged(base, "resume=true"), "resumed with resume=true: "
        redone = (f"the killed process's steps {at + 1}–{logged} were trained again (their events hidden by "
                  "TensorBoard's purge)" if at is not None and logged > at else "it had logged nothing past it")
        row.lost = (f"none in the result: resumed from the checkpoint of step {at}; {redone}" if at is not None
                    else "no checkpoint was found")
    else:
        line = [ln for ln in o.lines if ln.startswith("interrupted:")]
        printed = len(line) == 1 and "to resume: ppo-bench " in line[0]
        row.expect(printed, "no 'interrupted: … to resume: ppo-bench …' line")
        resume = shlex.split(line[0].split("to resume: ", 1)[1]) if printed else merged(base, "resume=true")
        how = "the printed resume command: "
        row.expect(at is not None and at == logged, f"checkpointed at step {at} but logged up to step {logged}")
        row.lost = f"none: checkpointed after the iteration it was in (step {at})"
    if also:
        rows.append(changed_settings(drill, base, root))
    r = row.ran(drill.run(*resume), how)
    if row.expect(r.code == 0, "the resume did not finish"):
        drill.compare_with_reference(row, run_dir)
    return rows


def second_process(drill: Drill, holder: Process, argv: list[str], root: Path) -> Row:
    """Item 5: the same command again while the first trains (paused meanwhile, so that it cannot finish)."""
    row = Row("5", "two processes on one run folder")
    holder.send(signal.SIGSTOP)
    try:
        before = snapshot(root)
        o = row.ran(drill.run(*argv), f"the same command while process {holder.pid} trains the folder: ")
    finally:
        holder.send(signal.SIGCONT)
    row.expect_one_line_error(o)
    row.expect(f"in use by process {holder.pid}" in o.err, "the line does not name the process that holds the folder")
    diff = changed(before, snapshot(root), root)
    row.expect(not diff, f"the second process wrote {diff[:3]}")
    row.lost = "none: the second process wrote nothing, the first trained on" if not diff else f"files changed: {diff[:3]}"
    return row


def changed_settings(drill: Drill, argv: list[str], root: Path) -> Row:
    """Item 1: the interrupted run relaunched with resume=true and other settings."""
    row = Row("1", "resume with changed settings")
    before = snapshot(root)
    for overrides in [("env.num_envs=2",), ("algo.lr=0.01", "algo.epochs=3"), ("model.hidden=[32,32]",)]:
        o = row.ran(drill.run(*merged(argv, "resume=true", *overrides)))
        row.expect_one_line_error(o, f"{' '.join(overrides)}: ")
        for key in (x.split("=")[0] for x in overrides):
            row.expect(f"{key}: " in o.err and "(the run)" in o.err, f"the message does not name {key} with both values")
    diff = changed(before, snapshot(root), root)
    row.expect(not diff, f"files written: {diff[:3]}")
    row.lost = "none: nothing written in the run folder" if not diff else f"files changed: {diff[:3]}"
    return row


def killed_before_first_checkpoint(drill: Drill) -> list[Row]:
    """Item 6: SIGKILL after two logged iterations and before any checkpoint; then the same command again."""
    root = drill.d / "killed-early"
    run_dir = root / RUN
    argv = ["ppo-bench", *SMALL, "checkpoint_every=1000", f"run_root={root}"]
    row = Row("6", "killed (`kill -9`) before its first checkpoint, then the same command again")
    proc = drill.start(*argv)
    logged_twice = lambda: max(logged_steps(run_dir), default=0) >= 2 * STEPS_PER_ITER  # noqa: E731
    if not wait_for(proc, logged_twice, poll=0.2):
        row.ran(proc.wait())
        row.expect(False, "the run ended before the drill could kill it")
        return [row]
    proc.send(signal.SIGKILL)
    row.ran(proc.wait())
    row.commands.append("`kill -9 <its pid>` once 2 iterations are logged")
    row.expect(not (run_dir / "checkpoint.pt").exists(), "a checkpoint existed: the fault was not provoked")
    dead = scalars(run_dir)
    dead_episodes, dead_steps = len(dead.get("charts/episodic_return", [])), max(logged_steps(run_dir), default=0)
    r = row.ran(drill.run(*argv), "the same command: ")
    if row.expect(r.code == 0, "the relaunch did not finish"):
        episodes = len(scalars(run_dir).get("charts/episodic_return", []))
        ref, ref_o = drill.reference()
        clean = len(scalars(ref).get("charts/episodic_return", [])) if ref_o.code == 0 else None
        row.outcome.append(f"episodes in TensorBoard after the relaunch: {episodes}, in a clean run: {clean} "
                           f"(the killed process had logged {dead_episodes})")
        row.expect(episodes == clean, f"{episodes} episodes logged, a clean run logs {clean}")
        drill.compare_with_reference(row, run_dir)
    row.lost = (f"the killed process's {dead_steps} steps (no checkpoint yet): the relaunch started afresh and "
                f"deleted the {dead_episodes} episodes it had logged")
    return [row]


def mistyped_folder(drill: Drill) -> list[Row]:
    """Item 7d: resume=true onto a folder that holds no run."""
    row = Row("7d", "resume=true with a mistyped folder")
    typo = drill.d / "signal-sigtrem"
    o = row.ran(drill.run("ppo-bench", *SMALL, "resume=true", f"run_root={typo}"))
    row.expect_one_line_error(o)
    row.expect(not typo.exists(), "the folder was created")
    row.lost = "none: nothing created" if not typo.exists() else "a fresh run was started there"
    return [row]


def diverging_member(drill: Drill) -> list[Row]:
    """Item 3a: a population whose second member's adaptive β overflows to inf (3e38 doubled, in float32; d_targ
    1e-9 makes it double), so that its loss turns non-finite; the clip member must equal the run alone."""
    root = drill.d / "diverging"
    row = Row("3a", "a diverging member of a population (adaptive β from 3e38, doubled to inf)")
    o = row.ran(drill.run("ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}",
                          "population.objectives=[{name:clip,eps:0.2},{name:kl_adaptive,beta:3e38,kl_target:1e-9}]"))
    member = next((p.parent for p in root.glob("*/kl_adaptive*/seed0/status.json")), None)
    status = read_json(member / "status.json") if member else None
    if not row.expect(status is not None and status["status"] == "failed",
                      f"the kl_adaptive member did not fail ({status}): the fault was not provoked"):
        return [row]
    line = next((ln for ln in o.lines if "stopped at iteration" in ln), "")
    row.expect(bool(line), "no line saying which run stopped and why")
    kept = re.search(r"its last good checkpoint is kept: (\S+)", line)
    if kept:
        row.expect(Path(kept.group(1)).exists(), "the message says a checkpoint is kept, but there is none")
    else:
        row.expect(not (member / "checkpoint.pt").exists(), "the message says it had no checkpoint, but it has one")
    row.expect(o.code != 0, "exit code 0 with a failed run")
    row.lost = f"the diverged member: stopped at step {status['global_step']}, its checkpoint kept; the other: none"
    drill.compare_with_reference(row, root / RUN)
    if row.identical.startswith("yes"):
        row.identical = "the clip member against the run alone: " + row.identical
    return [row]


def infinite_beta(drill: Drill) -> list[Row]:
    """Item 3b: β = inf is refused before anything is built."""
    row = Row("3b", "`beta: inf` in an objective")
    root = drill.d / "beta-inf"
    o = row.ran(drill.run("ppo-bench", *TINY, f"run_root={root}", "population.objectives=[{name:kl_fixed,beta:inf}]"))
    row.expect_one_line_error(o)
    row.expect(not root.exists(), "something was written")
    row.lost = "none: nothing written" if not root.exists() else "files written"
    return [row]


def corrupt_checkpoint(drill: Drill) -> list[Row]:
    """Item 4: seed 1's checkpoint.pt truncated to half (4a), then both of its checkpoints (4b)."""
    root = drill.d / "corrupt"
    base = merged(["ppo-bench", *SMALL], "checkpoint_every=1", f"run_root={root}", "population.seeds=[0,1]")
    a = Row("4a", "one member's checkpoint.pt truncated to half its size, then resume")
    b = Row("4b", "both checkpoints of that member truncated, then resume")
    o = a.ran(drill.run(*merged(base, "total_timesteps=3072")), "a population of 2 seeds, 12 iterations: ")
    if not a.expect(o.code == 0, "the population did not train"):
        return [a, b]
    bad, healthy = root / RUN.replace("seed0", "seed1"), root / RUN
    ckpt = bad / "checkpoint.pt"
    os.truncate(ckpt, ckpt.stat().st_size // 2)
    a.commands.append(f"`truncate -s {ckpt.stat().st_size} {drill.shown(str(ckpt))}`")
    o = a.ran(drill.run(*merged(base, "resume=true")), "resume to 4096 steps: ")
    warned = [ln for ln in o.lines if ln.startswith("warning:")]
    a.expect(o.code == 0, "the resume did not finish")
    a.expect(len(warned) == 1 and "checkpoint.prev.pt" in warned[0], "no one-line warning naming the previous checkpoint")
    a.expect(len(o.lines) == 1, f"{len(o.lines)} lines on stderr, not the one warning")
    a.expect((bad / "checkpoint.corrupt.pt").exists(), "the damaged checkpoint was not set aside")
    st = read_json(bad / "status.json") or {}
    a.expect(st.get("status") == "finished" and st.get("global_step") == 4096, f"seed 1 ended {st}")
    a.lost = "seed 1's last iteration (steps 2817–3072), trained again from checkpoint.prev.pt; seed 0: none"
    if o.code == 0:  # the healthy member, continued beside the damaged one, must still equal the run alone
        same, text = identical(healthy, drill.reference()[0])
        a.identical = f"seed 0 (healthy) against the run alone: {text}; seed 1: — (no reference run)"
        a.expect(same, "the healthy member is not bit-identical to the run alone")

    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        path = bad / name
        os.truncate(path, path.stat().st_size // 2)
        b.commands.append(f"`truncate -s {path.stat().st_size} {drill.shown(str(path))}`")
    before = snapshot(root, skip=(".lock",))
    o = b.ran(drill.run(*merged(base, "resume=true", "total_timesteps=5120")))
    b.expect_one_line_error(o)
    b.expect(re.search(r"checkpoint(\.prev)?\.pt is unreadable", o.err) is not None, "the line does not name the damaged file")
    diff = changed(before, snapshot(root, skip=(".lock",)), root)
    b.expect(not diff, f"files written: {diff[:3]}")
    b.lost = "none: no file of either member written (the lock files aside)" if not diff else f"files changed: {diff[:3]}"
    return [a, b]


def damaged_status(drill: Drill) -> list[Row]:
    """Item 4c: a finished run's status.json cut mid-file (damage from outside: ppo-bench writes it atomically),
    then the same command with resume=true."""
    row = Row("4c", "a finished run's status.json cut to half its size, then resume")
    ref, o = drill.reference()
    if not row.expect(o.code == 0, f"the reference run failed ({o.said()})"):
        return [row]
    root = drill.d / "status"
    run = root / RUN
    shutil.copytree(ref, run, ignore=shutil.ignore_patterns(".lock"))
    row.commands.append(f"`cp -r {drill.shown(str(ref))} {drill.shown(str(run))}` (the finished small run)")
    status = run / "status.json"
    text = status.read_bytes()
    status.write_bytes(text[: len(text) // 2])
    row.commands.append(f"`truncate -s {len(text) // 2} {drill.shown(str(status))}`")
    o = row.ran(drill.run("ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}", "resume=true"))
    row.expect(o.code == 0, "the resume did not finish")
    row.expect(len(o.lines) == 1 and o.lines[0].startswith("warning:") and "status.json" in o.lines[0],
               "not one warning line naming status.json")
    st = read_json(status) or {}
    row.expect(st.get("status") == "finished" and st.get("global_step") == 4096, f"status now {st}")
    row.lost = "none: the status written again from the last checkpoint (already at the end), nothing trained again"
    drill.compare_with_reference(row, run)
    return [row]


def sweep_with_changed_settings(drill: Drill) -> list[Row]:
    """Item 2a: a finished two-job sweep relaunched with other settings (resume=auto, as the experiments run)."""
    root = drill.d / "sweep"
    base = merged(["ppo-bench", "-m", "seed=0,1", *TINY], "total_timesteps=512", f"run_root={root}", "resume=auto")
    row = Row("2a", "a finished sweep relaunched with changed settings (`ppo-bench -m`)")
    o = row.ran(drill.run(*base), "the sweep: ")
    if not row.expect(o.code == 0, "the sweep did not train"):
        return [row]
    before = snapshot(root)
    o = row.ran(drill.run(*merged(base, "algo.lr=0.003", "algo.epochs=5")), "relaunched with other algo.lr, algo.epochs: ")
    row.expect(o.code == 2, f"exit code {o.code}, not 2")
    errors = [ln for ln in o.lines if ln.startswith("error:")]
    row.expect(any("algo.lr: " in ln and "algo.epochs: " in ln for ln in errors), "no error line naming algo.lr and algo.epochs")
    row.expect("finished (skipped)" not in o.out, "reported as 'finished (skipped)'")
    row.expect(not o.traceback, "a traceback")
    diff = changed(before, snapshot(root), root)
    row.expect(not diff, f"files written: {diff[:3]}")
    row.lost = "none: nothing written" if not diff else f"files changed: {diff[:3]}"
    return [row]


def llm_sweep(drill: Drill) -> list[Row]:
    """Item 2b: an LM sweep over a key that the run folder's name does not spell out."""
    root = drill.d / "llm-sweep"
    row = Row("2b", "`ppo-bench-llm -m` over a key outside the run name (algo.temperature; 16 held-out problems, "
                    "not 200, to save time)")
    o = row.ran(drill.run("ppo-bench-llm", "-m", "model=tiny", "task=reverse", "algo.steps=4",
                          "algo.temperature=0.5,1.5", "task.n_eval=16", f"run_root={root}"))
    row.expect(o.code == 0, "the sweep failed")
    runs = sorted(p.parent for p in root.rglob("status.json"))
    temps = []
    for run in runs:
        st, config = read_json(run / "status.json") or {}, run / "config.yaml"
        temp = re.search(r"^\s+temperature: (\S+)", config.read_text(), re.M) if config.exists() else None
        temps.append(temp.group(1) if temp else None)
        row.expect(st.get("status") == "finished" and st.get("step") == 4, f"{run.relative_to(root)}: {st}")
    row.outcome.append(f"{len(runs)} run folders: " + ", ".join(f"`{r.relative_to(root).as_posix()}`" for r in runs))
    row.expect(sorted(map(str, temps)) == ["0.5", "1.5"], f"the runs' temperatures are {temps}, not 0.5 and 1.5")
    row.expect("already finished" not in o.out, "a job reported another one's result")
    row.lost = "none"
    return [row]


def bad_input(drill: Drill) -> list[Row]:
    """Item 8: input that Hydra, the environment or the file system rejects before training."""
    latin1 = drill.d / "latin1.jsonl"
    latin1.write_bytes('{"prompt": "x", "chosen": "y", "rejected": "z"}\n'
                       '{"prompt": "caf\u00e9", "chosen": "y", "rejected": "z"}\n'.encode("latin-1"))
    cases = [
        ("8a", "unknown config group option `env=hoper`", ["ppo-bench", "env=hoper", *TINY[1:]]),
        ("8b", "unknown key `ppo.learning_rat=1e-3`", ["ppo-bench", *TINY, "ppo.learning_rat=1e-3"]),
        ("8c", "a value of the wrong type `algo.epochs=abc`", ["ppo-bench", *merged(TINY, "algo.epochs=abc")]),
        ("8d", "an added unknown key `+ppo.learning_rat=1e-3`", ["ppo-bench", *TINY, "+ppo.learning_rat=1e-3"]),
        ("8e", "an env keyword the env does not take `+env.kwargs.foo=1`", ["ppo-bench", *TINY, "+env.kwargs.foo=1"]),
        ("8f", "an env whose dependency is missing `env.id=CarRacing-v3`", ["ppo-bench", *TINY, "env.id=CarRacing-v3"]),
        ("8g", "a preference file that is not UTF-8 (`ppo-bench-llm algo=dpo`)",
         ["ppo-bench-llm", "algo=dpo", "model=tiny", f"algo.data_file={latin1}"]),
    ]
    rows = []
    for item, fault, argv in cases:
        row = Row(item, fault)
        root = drill.d / "bad-input" / item
        o = row.ran(drill.run(*argv, f"run_root={root}"))
        row.expect_one_line_error(o)
        trained = list(root.rglob("checkpoint.pt")) if root.exists() else []
        row.expect(not trained, "it trained")
        row.lost = "none: nothing trained" if not trained else "it trained, the option ignored"
        rows.append(row)
    rows.append(read_only_folder(drill))
    return rows


def read_only_folder(drill: Drill) -> Row:
    """Item 8h: hydra.run.dir (so run_root too) on a read-only bind mount; without mount namespaces, a path under
    a regular file (a folder that cannot be made)."""
    row = Row("8h", "a read-only run folder")
    target = drill.d / "read-only"
    target.mkdir(exist_ok=True)
    if drill.unshare():
        row.fault += " (hydra.run.dir = run_root bind-mounted read-only: chmod a-w does not stop root)"
        script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
        o = row.ran(drill.run(*UNSHARE, "sh", "-c", script, "-", str(target), sys.executable, "-m", "ppo_bench",
                              *TINY, f"hydra.run.dir={target}"))
    else:
        row.fault += " (hydra.run.dir under a regular file: this machine allows no mount namespace for a read-only mount)"
        blocker = drill.d / "a-file"
        blocker.write_text("")
        o = row.ran(drill.run("ppo-bench", *TINY, f"hydra.run.dir={blocker}/out"))
    row.expect_one_line_error(o)
    row.lost = "none: nothing could be written"
    return row


def file_modes(drill: Drill) -> list[Row]:
    """Item 9: the files of a run (and of the LM smoke run) under umask 022: 644, readable by the group."""
    row = Row("9", "files readable by the group (umask 022)")
    ref, o = drill.reference()
    row.commands.append(f"`{o.command}` and 11b's command, under `umask 022`")
    files = [ref / n for n in ("checkpoint.pt", "checkpoint.prev.pt", "config.yaml", "status.json", "identity.json")]
    files += sorted(ref.glob("events.out.tfevents.*"))[:1]
    llm = drill.llm_smoke_dir
    if llm is not None:
        files += [llm / n for n in ("checkpoint.pt", "config.yaml", "status.json", "summary.json")]
    modes = {}
    for f in files:
        label = ("LM run's " if llm is not None and f.parent == llm else "") + (
            "events file" if f.name.startswith("events") else f.name)
        modes[label] = oct(f.stat().st_mode & 0o777)[2:] if f.exists() else "missing"
    row.outcome.append(", ".join(f"{k} {v}" for k, v in modes.items()))
    if llm is None:
        row.outcome.append("(the LM smoke run, 11b, did not run: its files are not checked)")
    bad = [k for k, v in modes.items() if v != "644"]
    row.expect(not bad, f"not 644: {', '.join(bad)}")
    return [row]


class Payload:
    """Pickled into a checkpoint: unpickling it runs a shell command (what weights_only loading must refuse)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def save_payload(path: Path, marker: Path) -> None:
    import torch

    torch.save({"iteration": 1, "model": {}, "x": Payload(marker)}, path)


def judge_payload(row: Row, outcome, marker: Path) -> None:
    """Items 10a/10b: refused in one line, and the pickled command (which would create ``marker``) never ran."""
    row.expect_one_line_error(outcome)
    row.expect(not marker.exists(), "the pickled command ran")
    row.lost = "none: the command did not run" if not marker.exists() else "**the pickled command ran**"


def code_in_checkpoint(drill: Drill) -> list[Row]:
    """Item 10a: ppo-bench resumes a run whose checkpoint runs a command when unpickled."""
    row = Row("10a", "a checkpoint that would run code when unpickled (`ppo-bench` resume)")
    root = drill.d / "payload"
    (root / RUN).mkdir(parents=True, exist_ok=True)
    ref, _ = drill.reference()
    for name in ("identity.json", "config.yaml"):  # the run's own identity: the checkpoint itself is read
        if (ref / name).exists():
            shutil.copy(ref / name, root / RUN / name)
    marker = drill.d / "PWNED-by-ppo-bench"
    in_child(save_payload, root / RUN / "checkpoint.pt", marker)
    row.commands.append(f"the small run's identity.json and config.yaml beside `torch.save({{…, 'x': <an object whose "
                        f"unpickling runs touch {drill.shown(str(marker))}>}}, '$D/payload/{RUN}/checkpoint.pt')`")
    o = row.ran(drill.run("ppo-bench", *SMALL, "checkpoint_every=1", "resume=true", f"run_root={root}"))
    judge_payload(row, o, marker)
    return [row]


def llm_code_in_checkpoint(drill: Drill) -> list[Row]:
    """Item 10b: the same for an LM run (a copy of the smoke run, its checkpoint replaced, resumed to more steps)."""
    row = Row("10b", "a checkpoint that would run code when unpickled (`ppo-bench-llm` resume)")
    smoke = drill.llm_smoke_dir
    if smoke is None:
        row.not_run = "the LM smoke run (11b) did not run"
        return [row]
    root = drill.d / "llm-payload"
    target = root / smoke.relative_to(smoke.parents[2])
    shutil.copytree(smoke, target, dirs_exist_ok=True)
    marker = drill.d / "PWNED-by-ppo-bench-llm"
    (target / "checkpoint.prev.pt").unlink(missing_ok=True)  # with it, the run would go on from it, with a warning
    in_child(save_payload, target / "checkpoint.pt", marker)
    row.commands.append(f"a copy of 11b's run folder under $D/llm-payload, its checkpoint.pt replaced by one whose "
                        f"unpickling runs `touch {drill.shown(str(marker))}` and its checkpoint.prev.pt removed")
    o = row.ran(drill.run("ppo-bench-llm", "model=tiny", "task=reverse", "algo.steps=21", "task.n_eval=16",
                          f"run_root={root}"))
    judge_payload(row, o, marker)
    return [row]


def llm_second_process(drill: Drill) -> list[Row]:
    """Item 5b: two ppo-bench-llm processes on one run folder (the first paused after its first checkpoint)."""
    row = Row("5b", "two processes on one LM run folder (`ppo-bench-llm`)")
    root = drill.d / "llm-lock"
    argv = ["ppo-bench-llm", *LLM_TINY, "algo.steps=12", "checkpoint_every=2", f"run_root={root}"]
    first = drill.start(*argv)
    if not wait_for(first, lambda: any(root.rglob("checkpoint.pt")), poll=0.05):
        row.ran(first.wait())
        row.expect(False, "the first run ended before the drill could start the second")
        return [row]
    first.send(signal.SIGSTOP)
    try:
        o = row.ran(drill.run(*argv), f"the same command while process {first.pid} trains the folder: ")
    finally:
        first.send(signal.SIGCONT)
    refused = row.expect_one_line_error(o)
    f = row.ran(first.wait(), "the first, continued: ")
    row.lost = ("none: the second process wrote nothing" if refused else
                f"both processes trained the folder (the second: exit {o.code}; the first: exit {f.code})")
    return [row]


def group_advantages_max() -> list[float]:
    """Issue item 11's two groups of equal rewards: the largest |Â| of each, and GRPO's equal-groups predicate."""
    import torch

    from ppo_bench.common.losses import equal_reward_groups, group_advantages

    cases = [torch.tensor([1.2] * 8 + [0.2] * 8), torch.full((8,), 1.2)]
    return ([float(group_advantages(r, 8).abs().max()) for r in cases]
            + [bool(equal_reward_groups(r, 8).all()) for r in cases])


def llm_counts(drill: Drill) -> list[Row]:
    """Item 11: equal rewards give zero advantages; the README's smoke run says truly how many steps updated."""
    a = Row("11a", "`group_advantages` of groups of equal float32 rewards")
    a.commands.append("`group_advantages(torch.tensor([1.2]*8 + [0.2]*8), 8)`, `group_advantages(torch.full((8,), 1.2), 8)` "
                      "(ppo_bench.common.losses)")
    try:
        m1, m2, eq1, eq2 = in_child(group_advantages_max)
        a.outcome.append(f"largest |Â|: {m1!r} and {m2!r}; equal groups by GRPO's predicate: {eq1 and eq2}")
        a.expect(m1 == 0.0 and m2 == 0.0, "non-zero advantages for a group of equal rewards")
        a.expect(eq1 and eq2, "GRPO's equal-groups predicate disagrees")
    except RuntimeError as e:
        a.expect(False, f"it raised {e}")

    b = Row("11b", "the README's LM smoke run: how many steps updated the model (16 held-out problems, not 200, "
                   "to save time)")
    root = drill.d / "llm-smoke"
    o = b.ran(drill.run("ppo-bench-llm", "model=tiny", "task=reverse", "algo.steps=20", "task.n_eval=16",
                        f"run_root={root}"))
    line = next((ln for ln in o.out.splitlines() if " GRPO steps in " in ln), "")
    b.outcome.append(f"stdout: {code(line)}" if line else "no summary line on stdout")
    runs = [p.parent for p in root.rglob("status.json")]
    if b.expect(o.code == 0 and bool(line) and len(runs) == 1, "the smoke run did not finish with its summary line"):
        drill.llm_smoke_dir = runs[0]
        steps = int(re.search(r"(\d+) GRPO steps", line).group(1))
        m = re.search(r"(\d+) of them with an update", line)
        said = int(m.group(1)) if m else steps
        logged = scalars(runs[0]).get("stats/optimizer_steps", [])
        updated = sum(1 for _, v in logged if v > 0)
        b.outcome.append(f"TensorBoard: {len(logged)} steps logged, {updated} of them with an optimizer step")
        b.expect(steps == len(logged) == 20, f"{steps} steps said, {len(logged)} logged, 20 asked")
        b.expect(said == updated, f"it says {said} steps updated the model, the logs show {updated}")
    return [a, b]


def full_disk(drill: Drill) -> list[Row]:
    """Item 12: the run folder on a tmpfs with room for two checkpoints, not three; then more room and resume."""
    row = Row("12", "a full disk (a tmpfs too small for the run), then more space and resume")
    if not drill.unshare():
        row.not_run = "this machine allows no private mount namespace (`unshare --mount --map-root-user`) for a small tmpfs"
        return [row]
    ref, ref_o = drill.reference()
    if not row.expect(ref_o.code == 0, "the reference run failed"):
        return [row]
    size_kb = math.ceil(2.5 * (ref / "checkpoint.pt").stat().st_size / 1024)
    disk, copy, logs = drill.d / "disk", drill.d / "full-disk-runs", drill.logs
    disk.mkdir(exist_ok=True)
    args = [*SMALL, "checkpoint_every=1", f"run_root={disk}/runs"]
    first = shlex.join([sys.executable, "-m", "ppo_bench", *args])
    again = shlex.join([sys.executable, "-m", "ppo_bench", *args, "resume=true"])
    q = shlex.quote
    script = "\n".join([
        f"mount -t tmpfs -o size={size_kb}k tmpfs {q(str(disk))} || exit 97",
        f"{first} >{q(str(logs))}/disk-1.out 2>{q(str(logs))}/disk-1.err; echo $? >{q(str(logs))}/disk-1.code",
        f"cp {q(str(disk / 'runs' / RUN / 'status.json'))} {q(str(logs))}/disk-1.status",
        f"mount -o remount,size=64m {q(str(disk))} || exit 98",
        f"{again} >{q(str(logs))}/disk-2.out 2>{q(str(logs))}/disk-2.err; echo $? >{q(str(logs))}/disk-2.code",
        f"cp -a {q(str(disk))}/runs {q(str(copy))}",
    ])
    o = drill.run(*UNSHARE, "sh", "-c", script)
    row.commands += [f"in a private mount namespace (`{' '.join(UNSHARE)}`):",
                     f"`mount -t tmpfs -o size={size_kb}k tmpfs $D/disk`", f"`{drill.shown(first)}`",
                     "`mount -o remount,size=64m $D/disk`", f"`{drill.shown(again)}`"]
    if not row.expect(o.code == 0, f"the namespace script failed ({o.said()})"):
        return [row]
    for n, note in ((1, "on the full disk: "), (2, "resumed with space: ")):
        res = Outcome("", int((logs / f"disk-{n}.code").read_text()), (logs / f"disk-{n}.out").read_text(errors="replace"),
                      (logs / f"disk-{n}.err").read_text(errors="replace"), 0.0, 0.0)
        row.outcome.append(note + drill.shown(res.said()))
        if n == 1:
            row.expect(res.code != 0, "exit 0 on a full disk")
            one = len(res.lines) == 1 and res.lines[0].startswith("error:") and not res.traceback
            row.expect(one, f"not one error line ({len(res.lines)} lines on stderr{', a traceback' if res.traceback else ''})")
        else:
            row.expect(res.code == 0, "the resume did not finish")
    at = (read_json(logs / "disk-1.status") or {}).get("global_step")
    row.lost = f"none in the result: resumed from the last checkpoint written before the disk filled (step {at})"
    drill.compare_with_reference(row, copy / RUN)
    return [row]


# ----------------------------------------------------------------------------------------- guarantees by class
# Item 13: each guarantee of docs "Faults and resume" shown end to end for its class, beside the tests that prove it
# over generated faults (tests/test_launch_guarantees.py, test_event_integrity.py, test_report_integrity.py,
# test_os_errors.py, test_action_spaces.py).
PROBE_ENVS = Path(__file__).with_name("probe_envs.py")  # environments that check every action they get


def refused_untouched(row: Row, o: Outcome, root: Path, before: dict, what: str = "") -> None:
    """A refusal as promised: one error line, exit code 2, and not a byte of the folder changed."""
    row.expect_one_line_error(o, what)
    diff = changed(before, snapshot(root, skip=(".lock",)), root)
    row.expect(not diff, f"{what}files changed: {diff[:3]}")
    if not row.lost or row.lost == "—":
        row.lost = "none: nothing written" if not diff else f"files changed: {diff[:3]}"


def copy_reference(drill: Drill, row: Row, root: Path) -> Path | None:
    ref, o = drill.reference()
    if not row.expect(o.code == 0, f"the reference run failed ({o.said()})"):
        return None
    run = root / RUN
    shutil.copytree(ref, run, ignore=shutil.ignore_patterns(".lock"))
    row.commands.append(f"`cp -r {drill.shown(str(ref))} {drill.shown(str(run))}` (the finished small run)")
    return run


def nothing_deleted(drill: Drill) -> list[Row]:
    """13a: a finished run without its checkpoints (unpacked, or removed to free disk), relaunched without resume and
    with other settings, and with resume and a longer budget; 13b: a folder with a run's data and no identity."""
    a = Row("13a", "a finished run whose checkpoints are gone, relaunched: without resume and with other settings "
                   "(algo.lr=0.01), and with resume and a higher budget")
    b = Row("13b", "a run folder holding data but no identity.json or config.yaml, relaunched without resume")
    root = drill.d / "no-checkpoints"
    run = copy_reference(drill, a, root)
    if run is None:
        return [a, b]
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run / name).unlink()
    a.commands.append(f"`rm {drill.shown(str(run))}/checkpoint*.pt`")
    before = snapshot(root, skip=(".lock",))
    base = ["ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}"]
    refused_untouched(a, a.ran(drill.run(*base, "algo.lr=0.01")), root, before, "other settings: ")
    refused_untouched(a, a.ran(drill.run(*merged(base, "total_timesteps=8192", "resume=true"))), root, before,
                      "a higher budget: ")
    a.lost = "none: the run's events, status and identity are as they were"
    for name in ("identity.json", "config.yaml"):
        (run / name).unlink()
    b.commands.append(f"13a's folder, then `rm {drill.shown(str(run))}/identity.json {drill.shown(str(run))}/config.yaml`")
    before = snapshot(root, skip=(".lock",))
    refused_untouched(b, b.ran(drill.run(*base)), root, before)
    return [a, b]


def other_settings_and_lengths(drill: Drill) -> list[Row]:
    """13c: a run interrupted at step 512 of 4096 resumed with a lower budget; 13d: its identity.json and config.yaml
    deleted, resumed with other settings and other shapes; then resumed as it was, bit for bit."""
    c = Row("13c", "a run interrupted at step 512 of 4096 resumed with `total_timesteps=256 resume=true`")
    d = Row("13d", "the same run with identity.json and config.yaml deleted, resumed with `algo.lr=0.01` and with "
                   "`env.num_envs=2`")
    root = drill.d / "interrupted"
    run_dir = root / RUN
    base = ["ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}"]
    proc = drill.start(*base)
    if not wait_for(proc, checkpointed(run_dir, 2)):
        c.ran(proc.wait())
        c.expect(False, "the run ended before the drill could stop it")
        return [c, d]
    proc.send(signal.SIGTERM)
    c.ran(proc.wait(), "stopped after its second checkpoint: ")
    c.commands.append("`kill -TERM <its pid>` once iteration 2 is checkpointed")
    before = snapshot(root, skip=(".lock",))
    refused_untouched(c, c.ran(drill.run(*merged(base, "total_timesteps=256", "resume=true"))), root, before)
    c.expect("may only be raised" in c.outcome[-1], "the line does not say the budget may only be raised")
    saved = {n: (run_dir / n).read_bytes() for n in ("identity.json", "config.yaml")}
    for n in saved:
        (run_dir / n).unlink()
    d.commands.append(f"`rm {drill.shown(str(run_dir))}/identity.json {drill.shown(str(run_dir))}/config.yaml`")
    before = snapshot(root, skip=(".lock",))
    for extra in ("algo.lr=0.01", "env.num_envs=2"):
        refused_untouched(d, d.ran(drill.run(*merged(base, extra, "resume=true"))), root, before, f"{extra}: ")
    for n, data in saved.items():
        (run_dir / n).write_bytes(data)
    o = d.ran(drill.run(*merged(base, "resume=true")), "with its files back, resumed as it was: ")
    if d.expect(o.code == 0, "the resume did not finish"):
        drill.compare_with_reference(d, run_dir)
    d.lost = "none: refused before anything was written; the run then resumed bit for bit"
    return [c, d]


def flip_bit(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x04
    path.write_bytes(bytes(data))


def cut_between_records(path: Path) -> int:
    """Cut an event file after its middle record, exactly between two records; returns its new size."""
    import struct

    data, ends, i = path.read_bytes(), [], 0
    while i + 12 <= len(data):
        i += 12 + struct.unpack_from("<Q", data, i)[0] + 4
        ends.append(i)
    path.write_bytes(data[:ends[len(ends) // 2]])
    return ends[len(ends) // 2]


def reports_verify(drill: Drill) -> list[Row]:
    """13e: the same sweep in two sub-folders; 13f: a finished run's event file with one bit flipped, or cut between
    two records; 13g: a damaged config.yaml, for the report and for ppo-bench-eval."""
    e = Row("13e", "the same finished run copied into two sub-folders of the folder reported (`ppo-bench-report --by`)")
    f = Row("13f", "a finished run's event file with one bit flipped, and cut exactly between two records "
                   "(`ppo-bench-report`, Table-1 mode)")
    g = Row("13g", "a finished run's config.yaml damaged (`ppo-bench-report`, `ppo-bench-eval`)")
    root = drill.d / "reports"
    for sub in ("a", "b"):
        if copy_reference(drill, e, root / "twice" / sub) is None:
            return [e, f, g]
    o = e.ran(drill.run("ppo-bench-report", str(root / "twice"), "--by", "objective.name", "--reps", "100"))
    e.expect(o.code == 0, "the report failed")
    table = [ln for ln in o.out.splitlines() if "InvertedPendulum-v5" in ln and not ln.startswith("note:")]
    e.expect(len(table) == 1 and re.search(r"InvertedPendulum-v5\s+clip\s+1\s", table[0]) is not None,
             f"not one seed in the table: {table}")
    e.expect("the same run as" in o.out, "no note that the run was found twice")
    e.outcome.append(f"stdout: {code(table[0] if table else '')}; {code(next((ln for ln in o.out.splitlines() if 'the same run as' in ln), ''))}")
    e.lost = "none"
    for how, damage in (("one bit flipped", lambda p: flip_bit(p, p.stat().st_size // 2)),
                        ("cut between two records", cut_between_records)):
        where = root / how.replace(" ", "-")
        run = copy_reference(drill, f, where)
        if run is None:
            return [e, f, g]
        damage(next(run.glob("events.out.tfevents.*")))
        o = f.ran(drill.run("ppo-bench-report", str(where), "--reps", "100", "--out-dir", str(where / "report")),
                  f"{how}: ")
        md = (where / "report" / "table1.md").read_text() if (where / "report" / "table1.md").exists() else ""
        f.expect(o.code == 0 and "0 finished runs" in o.out, f"{how}: the run was scored ({o.out.splitlines()[:1]})")
        f.expect("damaged, not scored" in md, f"{how}: table1.md does not name the run damaged")
        f.expect(all(ln.startswith("warning: ") for ln in o.lines) and any("damaged" in ln for ln in o.lines),
                 f"{how}: no warning line naming the damage")
    f.lost = "none: the run is named damaged and scored nowhere (its events are as damaged as they were)"
    run = copy_reference(drill, g, root / "config")
    if run is None:
        return [e, f, g]
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("lr: 0.0003", "lr: 0.003"))
    g.commands.append(f"`sed -i s/lr: 0.0003/lr: 0.003/ {drill.shown(str(run))}/config.yaml`")
    o = g.ran(drill.run("ppo-bench-report", str(root / "config"), "--by", "algo.lr", "--reps", "100"))
    g.expect(o.code == 2 or "damaged" in o.err, "the report did not name the damage")
    g.expect(not o.traceback, "a traceback")
    o = g.ran(drill.run("ppo-bench-eval", str(run), "--episodes", "1"))
    g.expect_one_line_error(o)
    g.expect("config.yaml disagrees with the run's identity.json" in o.err, "the line does not name config.yaml")
    g.lost = "none: read nowhere as the run's settings"
    return [e, f, g]


def action_spaces(drill: Drill) -> list[Row]:
    """13h: environments whose actions are a Box of shape (2, 3), a Discrete from 1, a MultiDiscrete."""
    rows = []
    shutil.copy(PROBE_ENVS, drill.d / "probe_envs.py")
    if str(drill.d) not in sys.path:
        sys.path.insert(0, str(drill.d))  # forked commands import the module of `probe_envs:...`
    for item, env, modelled in (("13h", "Box2x3-v0", True), ("13i", "DiscreteFrom1-v0", True),
                                ("13j", "MultiDiscrete-v0", False)):
        row = Row(item, f"an environment whose actions are {'a Box of shape (2, 3)' if env.startswith('Box') else 'a Discrete(3, start=1)' if modelled else 'a MultiDiscrete([2, 3])'}, which checks every action it receives")
        root = drill.d / "spaces" / item
        o = row.ran(drill.run("ppo-bench", f"env.id=probe_envs:{env}", "algo.num_steps=32", "algo.minibatch_size=32",
                              "algo.epochs=1", "total_timesteps=64", f"run_root={root}"))
        if modelled:
            row.expect(o.code == 0, "the run failed (an action of the wrong shape or value?)")
            runs = list(root.rglob("checkpoint.pt"))
            if row.expect(len(runs) == 1, "no trained run"):
                e = row.ran(drill.run("ppo-bench-eval", str(runs[0].parent), "--episodes", "2"))
                row.expect(e.code == 0, "evaluating failed")
            row.lost = "none: every action of training and evaluation in the space"
        else:
            row.expect_one_line_error(o)
            row.expect(not root.exists(), "a run folder was written")
            row.lost = "none: refused before anything was written"
        rows.append(row)
    return rows


def numbers_and_paths(drill: Drill) -> list[Row]:
    """13k: numbers the engine cannot hold; 13l: paths that cannot be written, on every command that writes."""
    k = Row("13k", "numbers outside what the engine holds: `algo.lr=1e39` (float32 overflow), `algo.lr=1e-50` "
                   "(float32 underflow), `seed=2**63`, `env.num_envs=10**11`")
    root = drill.d / "numbers"
    for extra in ("algo.lr=1e39", "algo.lr=1e-50", f"seed={2 ** 63}", f"env.num_envs={10 ** 11}"):
        o = k.ran(drill.run("ppo-bench", *TINY, extra, f"run_root={root}"))
        k.expect_one_line_error(o, f"{extra}: ")
    k.expect(not root.exists(), "something was written")
    k.lost = "none: refused before anything was built"
    row = Row("13l", "outputs that cannot be written, on each command: a name under a regular file, a folder where a "
                     "file goes, a folder only the kernel writes, a name too long")
    ref, ro = drill.reference()
    if not row.expect(ro.code == 0, "the reference run failed"):
        return [k, row]
    blocker = drill.d / "a-file"
    blocker.write_text("")
    (drill.d / "a-folder.json").mkdir(exist_ok=True)
    long = drill.d / ("x" * 300)
    cases = [
        ["ppo-bench", *TINY, f"run_root={blocker}/runs"],
        ["ppo-bench", *TINY, f"run_root={long}"],
        ["ppo-bench-eval", str(ref), "--episodes", "1", "--json", str(drill.d / "a-folder.json")],
        ["ppo-bench-eval", str(ref), "--episodes", "1", "--export", "/sys/policy.pt"],
        ["ppo-bench-report", str(ref.parents[2]), "--by", "objective.name", "--out-dir", f"{blocker}/report"],
        ["ppo-bench-report", str(ref.parents[2]), "--csv", "/sys/table1.csv"],
        [sys.executable, "-m", "ppo_bench.analysis.archive", "pack", str(ref.parents[2]), f"{long}/archive"],
    ]
    for argv in cases:
        o = row.ran(drill.run(*argv))
        row.expect_one_line_error(o, f"{argv[0]}: ")
    row.lost = "none: each command stopped before its work, in one line naming the path"
    return [k, row]


def waits_and_names(drill: Drill) -> list[Row]:
    """13m: a resumed run whose previous event file bears a time an hour ahead (another node's clock); 13n: one
    objective twice in a population; 13o: two settings that differ past six digits; 13p: a kill -9 that left a
    whole checkpoint and a temporary file behind."""
    m = Row("13m", "a run resumed after its previous event file was written by a clock an hour ahead")
    n = Row("13n", "the same objective setting twice in one population")
    p = Row("13o", "two settings that differ past six digits (ε = 0.2 and 0.2000001) in one population")
    q = Row("13p", "a kill -9 that left a whole checkpoint not yet renamed into place and a temporary file")
    root = drill.d / "future"
    base = ["ppo-bench", *SMALL, "checkpoint_every=1", f"run_root={root}"]
    proc = drill.start(*base)
    if wait_for(proc, checkpointed(root / RUN, 2)):
        proc.send(signal.SIGKILL)
        m.ran(proc.wait())
        m.commands.append("`kill -9 <its pid>` once iteration 2 is checkpointed")
        for f in (root / RUN).glob("events.out.tfevents.*"):
            fields = f.name.split(".")
            fields[3] = str(int(fields[3]) + 3600)
            f.rename(f.with_name(".".join(fields)))
        m.commands.append("its event file renamed to bear a time an hour later")
        (root / RUN / ".checkpoint.pt.new").write_bytes((root / RUN / "checkpoint.pt").read_bytes())
        (root / RUN / ".checkpoint.pt.x1y2.tmp").write_bytes(b"\0" * 4096)
        q.commands.append("in that folder: `cp checkpoint.pt .checkpoint.pt.new; head -c 4096 /dev/zero > "
                          ".checkpoint.pt.x1y2.tmp` (what a kill -9 between the steps of a save leaves)")
        t0 = time.perf_counter()
        o = m.ran(drill.run(*merged(base, "resume=true")), "resumed: ")
        took = time.perf_counter() - t0
        m.outcome.append(f"took {took:.0f} s (the run alone: {drill.reference()[1].seconds:.0f} s)")
        if m.expect(o.code == 0, "the resume did not finish"):
            m.expect(took < 600, f"it took {took:.0f} s: it waited for the clock")
            drill.compare_with_reference(m, root / RUN)
        left = sorted(x.name for x in (root / RUN).glob(".*") if x.name != ".lock")
        q.outcome.append(f"after the resume: {', '.join(left) or 'no temporary file left'}")
        q.expect(not left, f"left behind: {left}")
        q.identical = m.identical
        q.lost = "none: the temporary files removed at the next start"
    else:
        m.ran(proc.wait())
        m.expect(False, "the run ended before the drill could kill it")
    o = n.ran(drill.run("ppo-bench", *TINY, f"run_root={drill.d / 'twice'}",
                        "population.objectives=[{name:clip,eps:0.2},{name:clip,eps:0.2}]"))
    n.expect_one_line_error(o)
    n.expect("twice" in o.err and "clip_eps0.2" in o.err and "in use by process" not in o.err,
             "the line does not name the duplicate setting")
    n.lost = "none: nothing written"
    root = drill.d / "digits"
    o = p.ran(drill.run("ppo-bench", *TINY, f"run_root={root}",
                        "population.objectives=[{name:clip,eps:0.2},{name:clip,eps:0.2000001}]"))
    folders = sorted(x.name for x in (root / "InvertedPendulum-v5").iterdir()) if root.exists() else []
    p.outcome.append(f"run folders: {', '.join(f'`{x}`' for x in folders)}")
    p.expect(o.code == 0 and len(folders) == 2, "not two run folders")
    p.lost = "none"
    return [m, n, p, q]


def eval_previous_checkpoint(drill: Drill) -> list[Row]:
    """13q: ppo-bench-eval on a run that has only checkpoint.prev.pt (its last save interrupted, or removed)."""
    row = Row("13q", "`ppo-bench-eval` on a run whose only checkpoint is checkpoint.prev.pt")
    run = copy_reference(drill, row, drill.d / "prev-only")
    if run is None:
        return [row]
    (run / "checkpoint.pt").unlink()
    row.commands.append(f"`rm {drill.shown(str(run))}/checkpoint.pt`")
    o = row.ran(drill.run("ppo-bench-eval", str(run), "--episodes", "2"))
    row.expect(o.code == 0 and "return" in o.out, "it did not evaluate")
    row.expect(len(o.lines) == 1 and o.lines[0].startswith("warning:") and "checkpoint.prev.pt" in o.lines[0],
               "not one warning naming the previous checkpoint")
    row.lost = "none"
    return [row]


def llm_guarantees(drill: Drill) -> list[Row]:
    """13r-13u: the LM commands' counterparts: a preference file with invalid Unicode, ppo-bench-llm-eval's output
    that cannot be written, a run folder name too long, a DPO run whose preference file is gone resumed."""
    r = Row("13r", "a preference file with a lone surrogate (`\\ud800`) in a field (`ppo-bench-llm algo=dpo`)")
    prefs = drill.d / "surrogate.jsonl"
    prefs.write_text('{"prompt": "x\\ud800", "chosen": "y", "rejected": "z"}\n{"prompt": "a", "chosen": "b", '
                     '"rejected": "c"}\n')
    o = r.ran(drill.run("ppo-bench-llm", *LLM_TINY, "algo=dpo", f"algo.data_file={prefs}",
                        f"run_root={drill.d / 'llm-surrogate'}"))
    r.expect_one_line_error(o)
    r.expect(f"{prefs}:1" in o.err, "the line does not name the file and line")
    r.lost = "none: nothing trained"
    s = Row("13s", "`ppo-bench-llm-eval --json` into a folder that cannot be written")
    smoke = drill.llm_smoke_dir
    if smoke is None:
        s.not_run = "the LM smoke run (11b) did not run"
    else:
        blocker = drill.d / "a-file"
        blocker.write_text("")
        t0 = time.perf_counter()
        o = s.ran(drill.run("ppo-bench-llm-eval", str(smoke), "--json", f"{blocker}/eval.json"))
        s.expect_one_line_error(o)
        s.outcome.append(f"it took {time.perf_counter() - t0:.1f} s: the output checked before evaluating")
        s.lost = "none: no evaluation was done to be lost"
    t = Row("13t", "`ppo-bench-llm` with a run folder whose name is too long for the file system")
    o = t.ran(drill.run("ppo-bench-llm", *LLM_TINY, "algo.steps=1", f"run_root={drill.d / ('x' * 300)}"))
    t.expect_one_line_error(o)
    t.lost = "none"
    u = Row("13u", "a DPO run on a preference file, stopped after its first checkpoint; the file moved away; resumed")
    root = drill.d / "llm-moved"
    good = drill.d / "prefs.jsonl"
    good.write_text("".join(f'{{"prompt": "Q: {a}?\\nA: ", "chosen": "{a}", "rejected": "{"x" * (1 + a % 3)}"}}\n'
                            for a in range(6)))
    argv = ["ppo-bench-llm", *LLM_TINY, "algo=dpo", f"algo.data_file={good}", "algo.batch_size=2",
            "checkpoint_every=1", f"run_root={root}"]
    o = u.ran(drill.run(*argv, "algo.steps=1"), "1 step of a run: ")
    if u.expect(o.code == 0, "the first step failed"):
        good.rename(drill.d / "prefs.moved")
        u.commands.append(f"`mv {drill.shown(str(good))} $D/prefs.moved`")
        o = u.ran(drill.run(*argv, "algo.steps=2"), "the same run to 2 steps: ")
        u.expect(o.code == 0, "the resume failed")
        runs = [p.parent for p in root.rglob("status.json")]
        st = read_json(runs[0] / "status.json") if runs else None
        u.expect(bool(st) and st.get("status") == "finished" and st.get("step") == 2, f"status {st}")
        u.lost = "none: resumed from the pairs its folder holds"
    return [r, s, t, u]


SCENARIOS: dict[str, Callable[[Drill], list[Row]]] = {
    "sigterm": lambda d: interrupt_and_resume(d, signal.SIGTERM, "7a", also=True),  # and items 1 and 5
    "sigint": lambda d: interrupt_and_resume(d, signal.SIGINT, "7b"),
    "sigkill": lambda d: interrupt_and_resume(d, signal.SIGKILL, "7c"),
    "mistyped-folder": mistyped_folder,
    "killed-early": killed_before_first_checkpoint,
    "diverging": diverging_member,
    "beta-inf": infinite_beta,
    "corrupt": corrupt_checkpoint,
    "damaged-status": damaged_status,
    "sweep": sweep_with_changed_settings,
    "llm-sweep": llm_sweep,
    "bad-input": bad_input,
    "code-in-checkpoint": code_in_checkpoint,
    "llm-counts": llm_counts,  # before the two that use its run
    "llm-code-in-checkpoint": llm_code_in_checkpoint,
    "llm-lock": llm_second_process,
    "file-modes": file_modes,
    "full-disk": full_disk,
    "sighup": lambda d: interrupt_and_resume(d, signal.SIGHUP, "7e"),
    "nothing-deleted": nothing_deleted,
    "lengths": other_settings_and_lengths,
    "reports": reports_verify,
    "action-spaces": action_spaces,
    "numbers-and-paths": numbers_and_paths,
    "waits-and-names": waits_and_names,
    "eval-previous": eval_previous_checkpoint,
    "llm-guarantees": llm_guarantees,  # after llm-counts, whose smoke run it evaluates
}


def run_scenario(drill: Drill, name: str, scenario: Callable[[Drill], list[Row]]) -> list[Row]:
    """A scenario's rows; a scenario that breaks is a failing row, not a stopped drill."""
    try:
        return scenario(drill)
    except Exception as e:  # noqa: BLE001
        drill.stop_all()
        return [Row(name, f"scenario {name}", failures=[f"the drill broke: {type(e).__name__}: {clip(str(e), 300)}"])]


# ----------------------------------------------------------------------------------------- the report
def item_key(row: Row) -> tuple:
    m = re.match(r"(\d+)([a-z]?)$", row.item)
    return (int(m.group(1)), m.group(2)) if m else (99, row.item)


def cell(parts: list[str] | str) -> str:
    text = "<br>".join(parts) if isinstance(parts, list) else parts
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], header: dict, shown: Callable[[str], str] = lambda s: s) -> str:
    """The Markdown report; ``shown`` rewrites every cell (the drill's folder as $D)."""
    rows = sorted(rows, key=item_key)
    failing = [r.item for r in rows if r.failing]
    not_run = [r.item for r in rows if r.not_run]
    passing = len(rows) - len(failing) - len(not_run)
    lines = [
        "# Fault drill: what each fault does to a run",
        "",
        f"Command: `{header['command']}` (rewrites this file; exit code 1 when a row fails).",
        "",
        f"Made {header['started']} – {header['ended']}: {header['wall']} of wall time, {header['cpu']} of CPU in its "
        f"commands; load average {header['load']}. Machine: {header['machine']}. Code: {header['commit']}.",
        "",
        "Each row is what its commands did in this drill, judged against the README (\"Outputs, TensorBoard, resume\"): "
        "a user's error or a refusal is one line on stderr starting `error:`, exit code 2, no traceback, nothing "
        "written; an interrupted run resumes bit for bit. `$D` is the drill's fresh folder. `ppo-bench` and "
        f"`ppo-bench-llm` are the console scripts' entry points, each command its own process ({header['mode']}); "
        "`python -m …` is a fresh interpreter. A resumed run is compared with one uninterrupted run, "
        f"`{header['reference']}` (16 iterations of 256 steps): every value of the final checkpoint but its wall "
        "time, and every logged scalar but `perf/*`.",
        "",
        f"**{passing} of {len(rows)} rows pass" + (f"; failing: {', '.join(failing)}" if failing else "")
        + (f"; not run: {', '.join(not_run)}" if not_run else "") + ".**",
        "",
        "| # | fault | command(s) | outcome | data lost | bit-identical after resume | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(shown(cell(x)) for x in (r.item, r.fault, r.commands, r.outcome, r.lost,
                                                                    r.identical, r.result)) + " |")
    if header.get("subset"):
        lines += ["", f"Only these scenarios ran: `--only {header['subset']}`."]
    return "\n".join(lines) + "\n"


def machine_line() -> tuple[str, str]:
    from ppo_bench.common.machine import describe

    libs = ("torch", "gymnasium", "mujoco", "hydra")
    m = describe(*libs)
    versions = ", ".join(f"{k} {m[k]}" for k in libs if m.get(k))
    return f"{m['cores']} cores, {m['cpu']}, {m['platform']}, Python {m['python']}, {versions}", m["commit"]


def main(argv: list[str] | None = None, scenarios: dict[str, Callable[[Drill], list[Row]]] | None = None) -> int:
    from ppo_bench.common.errors import ConfigError

    scenarios = SCENARIOS if scenarios is None else scenarios
    ap = OneLineArgumentParser(prog="fault_drill.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "results" / "faults.md"), help="the report (default results/faults.md)")
    ap.add_argument("--workdir", help="the drill's folder $D (default: a fresh temporary folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--spawn", action="store_true", help="run each command in a fresh interpreter (python -m)")
    ap.add_argument("--only", help=f"comma-separated scenarios, of: {', '.join(scenarios)}")
    ap.add_argument("--timeout", type=float, default=10800.0,
                    help="seconds one command may take before the drill kills it (default 10800: a loaded machine)")
    try:
        args = ap.parse_args(argv)
        chosen = args.only.split(",") if args.only else list(scenarios)
        unknown = [s for s in chosen if s not in scenarios]
        if unknown:
            raise ConfigError(f"--only: unknown scenario {', '.join(unknown)}; allowed: {', '.join(scenarios)}")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ppo-bench-drill-"))
    old_umask = os.umask(0o022)
    started, t0 = datetime.datetime.now(), time.perf_counter()
    load0 = os.getloadavg()[0]
    rows: list[Row] = []
    drill = None
    try:
        drill = Drill(workdir, spawn=args.spawn, timeout=args.timeout)
        for name in chosen:
            print(f"[{time.perf_counter() - t0:6.0f} s] {name}", flush=True)
            new = run_scenario(drill, name, scenarios[name])
            for r in new:
                print(f"           {r.item}: {r.result}", flush=True)
            rows += new
        machine, commit = machine_line()
        wall = time.perf_counter() - t0
        own = resource.getrusage(resource.RUSAGE_SELF)
        header = {
            "command": " ".join([COMMAND, *(["--only", args.only] if args.only else []), *(["--spawn"] if args.spawn else [])]),
            "started": started.strftime("%Y-%m-%d %H:%M"), "ended": datetime.datetime.now().strftime("%H:%M"),
            "wall": f"{wall // 60:.0f} min {wall % 60:.0f} s",
            "cpu": f"{drill.cpu_s + own.ru_utime + own.ru_stime:.0f} s",
            "load": f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
            "machine": machine, "commit": commit,
            "mode": "spawned, a fresh interpreter each" if args.spawn else
                    "forked from the drill's process, which imported ppo_bench once",
            "reference": drill.shown(shlex.join(["ppo-bench", *SMALL, "checkpoint_every=1",
                                                 f"run_root={drill.d / 'reference'}"])),
            "subset": args.only,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(rows, header, drill.shown))
    finally:
        if drill is not None:
            drill.stop_all()
        os.umask(old_umask)
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    failing = [r.item for r in rows if r.failing]
    print(f"{len(rows) - len(failing)} of {len(rows)} rows hold or were not run"
          + (f"; failing: {', '.join(failing)}" if failing else "") + f"; wrote {args.out}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
