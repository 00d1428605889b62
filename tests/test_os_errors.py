"""One error path for the operating system: every OSError a user's paths or disk can cause, on every command that
reads or writes, is one line naming the path and the reason, exit code 2 (``ppo_bench.common.errors``). Tested
over generated faults × commands (ppo-bench, ppo-bench-report, ppo-bench-eval with each of its outputs, the archive
tool's pack and unpack, ppo-bench-llm, ppo-bench-llm-eval): real unusable paths (a name under a regular file, a folder where a file goes, a
name too long, a symlink loop, a folder only the kernel writes) and any errno a user can cause injected where the
commands write (a full disk, a read-only file system, a quota, an I/O error, ...)."""

import errno
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppo_bench.analysis import archive as archive_mod
from ppo_bench.analysis import report as report_mod
from ppo_bench.common.errors import USER_OS_ERRORS, as_line, os_error_line, user_error_line
from ppo_bench.rl import evaluate as evaluate_mod
from scripts.fault_drill import Drill

LLM_TINY = ["model=tiny", "model.tiny_hidden=32", "model.tiny_heads=2", "task=reverse", "task.n_eval=4", "eval.every=0",
            "eval.before=false", "eval.batch_size=4", "eval.max_new_tokens=4", "algo.max_completion_length=4",
            "algo.prompts_per_step=2", "algo.num_generations=2", "algo.steps=1", "save_model=false", "torch_threads=1",
            "progress=never"]
TINY = ["env=inverted_pendulum", "algo.num_steps=32", "algo.minibatch_size=32", "algo.epochs=1",
        "total_timesteps=64", "checkpoint_every=1"]
KINDS = ("under_a_file", "a_folder", "too_long", "symlink_loop", "kernel_only", "injected")
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_and_packed):
    return trained_and_packed(tmp_path_factory.mktemp("trained"), *TINY)


def unusable(kind: str, where: str, suffix: str | None) -> str:
    """A path that cannot be used, of the kind asked for, below ``where``: a file's (named ``out<suffix>``), or with
    ``suffix`` None a folder's."""
    name = "out" + (suffix or "")
    if kind == "under_a_file":
        open(os.path.join(where, "a_file"), "w").close()
        return os.path.join(where, "a_file", name)
    if kind == "a_folder":  # a folder where the file goes (for a folder: a file where the folder goes)
        if suffix is None:
            open(os.path.join(where, name), "w").close()
        else:
            os.makedirs(os.path.join(where, name, "inside"), exist_ok=True)
        return os.path.join(where, name)
    if kind == "too_long":
        return os.path.join(where, "x" * 300, name)
    if kind == "symlink_loop":
        os.symlink("loop", os.path.join(where, "loop"))
        return os.path.join(where, "loop", name)
    if kind == "kernel_only":
        return "/sys/ppo-bench-" + name
    return os.path.join(where, "fine", name)


@pytest.fixture
def inject(monkeypatch):
    """inject(path, errno): every temporary file made at or below ``path`` (each atomic write's first step, and the
    check that an output can be written) fails with that errno, as a full or read-only disk would fail it."""
    real = tempfile.mkstemp

    def arm(path: str, code: int):
        def mkstemp(*a, dir=None, **kw):
            if dir is not None and os.path.abspath(str(dir)).startswith(os.path.abspath(path)):
                raise OSError(code, os.strerror(code))  # a write's error names no file: the writer must
            return real(*a, dir=dir, **kw)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return arm


def one_line(capsys, code: int, path: str) -> str:
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert code == 2, out.err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.err, out.err
    shown = path if len(path) < 250 else path[:40]
    assert shown.rstrip("/") in lines[0] or os.path.dirname(shown) in lines[0], lines[0]
    return lines[0]


def fault(kind, where, suffix, inject, code):
    path = unusable(kind, where, suffix)
    if kind == "injected":
        inject(os.path.dirname(path), code)
    return path


errnos = st.sampled_from(sorted(USER_OS_ERRORS))


@FUZZ
@given(kind=st.sampled_from(KINDS), code=errnos, output=st.sampled_from(["--json", "--export", "--video"]))
def test_ppo_bench_eval(trained, tmp_path_factory, capsys, inject, kind, code, output):
    where = str(tmp_path_factory.mktemp("eval"))
    path = fault(kind, where, {"--json": ".json", "--export": ".pt", "--video": None}[output], inject, code)
    run = trained / "runs" / "InvertedPendulum-v5" / "clip_eps0.2" / "seed0"
    one_line(capsys, evaluate_mod.main([str(run), "--episodes", "1", output, path]), path)


@FUZZ
@given(kind=st.sampled_from(KINDS), code=errnos, mode=st.sampled_from(["--by", "table1"]))
def test_ppo_bench_report(trained, tmp_path_factory, capsys, inject, kind, code, mode):
    where = str(tmp_path_factory.mktemp("report"))
    path = fault(kind, where, ".csv" if mode == "table1" else None, inject, code)
    args = [str(trained / "runs"), "--reps", "10"]
    args += ["--by", "objective.name", "--out-dir", path] if mode == "--by" else ["--csv", path]
    one_line(capsys, report_mod.main(args), path)


@FUZZ
@given(kind=st.sampled_from(KINDS), code=errnos, command=st.sampled_from(["pack", "unpack"]))
def test_archive(trained, tmp_path_factory, capsys, inject, kind, code, command):
    where = str(tmp_path_factory.mktemp("archive"))
    path = fault(kind, where, None, inject, code)
    args = ["pack", str(trained / "runs"), path] if command == "pack" else ["unpack", str(trained / "archive"), path]
    one_line(capsys, archive_mod.main(args), path)


@FUZZ
@given(kind=st.sampled_from(KINDS), code=errnos, at=st.sampled_from(["run_root", "checkpoint"]))
def test_ppo_bench(tmp_path_factory, inject, kind, code, at):
    """The run folder unusable from the start, or the disk failing at the first checkpoint, after an iteration. The
    command runs as the console script does, in a child forked from this process (the fault drill's way: Hydra
    sets up its logging on the process's streams), which inherits the injected fault."""
    where = str(tmp_path_factory.mktemp("train"))
    if at == "checkpoint":
        kind, path = "injected", os.path.join(where, "runs")
        inject(os.path.join(path, "InvertedPendulum-v5"), code)
    else:
        path = fault(kind, where, None, inject, code)
    o = Drill(Path(where) / "drill").run("ppo-bench", *TINY, f"run_root={path}", f"hydra.run.dir={where}/out")
    assert o.one_line_error() is None, o.err
    shown = path if len(path) < 250 else path[:40]
    assert shown in o.err or os.path.dirname(shown) in o.err, o.err


@FUZZ
@given(kind=st.sampled_from(KINDS), code=errnos)
def test_ppo_bench_llm(tmp_path_factory, inject, kind, code):
    """The run root unusable, or every write below it failing (the run folder's first file, after the weights
    loaded), as the console script runs it."""
    where = str(tmp_path_factory.mktemp("llm"))
    path = fault(kind, where, None, inject, code)
    o = Drill(Path(where) / "drill").run("ppo-bench-llm", *LLM_TINY, f"run_root={path}", f"hydra.run.dir={where}/out")
    assert o.one_line_error() is None, o.err
    shown = path if len(path) < 250 else path[:40]
    assert shown in o.err or os.path.dirname(shown) in o.err, o.err


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from ppo_bench.common.paths import LLM_CONF_DIR
    from ppo_bench.llm.harness.config import register_configs
    from ppo_bench.llm.launch import train_from_config as train_lm

    register_configs()
    root = tmp_path_factory.mktemp("lm")
    with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
        return train_lm(compose("config", overrides=[f"run_root={root}/runs", *LLM_TINY]))["run_dir"]


@FUZZ
@given(kind=st.sampled_from(KINDS), code=errnos)
def test_ppo_bench_llm_eval(lm_run, tmp_path_factory, capsys, inject, kind, code, monkeypatch_module):
    """--json where it cannot be written: said before the evaluation, whose result would otherwise be lost."""
    from ppo_bench.llm import evaluate_run as llm_eval

    monkeypatch_module.setattr(llm_eval, "evaluate_run", lambda *a, **k: pytest.fail("evaluated before the check"))
    where = str(tmp_path_factory.mktemp("llm-eval"))
    path = fault(kind, where, ".json", inject, code)
    one_line(capsys, llm_eval.main([lm_run, "--json", path]), path)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@given(code=errnos, name=st.one_of(st.none(), st.text(min_size=1, max_size=30)))
def test_every_user_errno_is_a_line_and_a_bug_is_not(code, name):
    line = os_error_line(OSError(code, os.strerror(code), name) if name else OSError(code, os.strerror(code)))
    assert line is not None and line.isprintable() and os.strerror(code) in line
    assert name is None or as_line(name) in line  # the path as given, its unprintable characters escaped
    wrapped = RuntimeError("a library's wrapper")
    wrapped.__cause__ = OSError(code, os.strerror(code), name)
    assert user_error_line(wrapped) is not None
    assert os_error_line(OSError(errno.EBADF, "Bad file descriptor")) is None  # ours to fix: it keeps its traceback
    assert user_error_line(KeyError("x")) is None
