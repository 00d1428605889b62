"""The description stored beside every benchmark figure: the commit must be the code's own."""

import subprocess

from ppo_bench.machine import describe, git_commit


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_names_head_and_marks_a_dirty_tree(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("not code\n")
    assert git_commit(tmp_path) == head  # untracked files do not change what ran
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == "unknown"


def test_describe_reports_missing_libraries_as_none():
    d = describe("numpy", "no_such_library_here")
    assert d["cores"] >= 1 and d["cpu"] and d["python"].count(".") == 2
    assert d["numpy"] == __import__("numpy").__version__
    assert d["no_such_library_here"] is None
