"""Every command the documentation shows is one the code takes: each ``ppo-bench`` / ``ppo-bench-llm`` line of the
site's pages and the README composes (Hydra, the real config trees) and validates, each ``ppo-bench-report`` /
``ppo-bench-eval`` line parses, each script's flags exist; and the extending page's example objective, written out
from the page itself, trains. (``make test`` builds the site itself with ``mkdocs build --strict``.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
# a line that stands for the reader's own values is not a command to run as written
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…|\bmy_pkg\b|\bRUN_DIR\b|\bRUN_ROOT\b|\bFOLDER\b|\bKEY\b|\$\w+")


def code_lines(page: Path) -> list[tuple[str, str]]:
    """(line, the line after it) of the page's fenced code blocks, continuation lines joined, a shell prompt and a
    trailing comment dropped: the line after a command is what the page says it prints."""
    lines, fenced, joined = [], False, ""
    for raw in page.read_text().splitlines():
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        text = raw.strip()
        if joined:
            text = joined + " " + text
            joined = ""
        if text.endswith("\\"):
            joined = text[:-1].strip()
            continue
        text = re.sub(r"^\$ ", "", text)
        text = re.sub(r"\s+#\s.*$", "", text)  # a comment after the command
        if text:
            lines.append(text)
    return list(zip(lines, [*lines[1:], ""]))


def commands(*programs: str, stand_in: str | None = None) -> list[tuple[str, list[str], str]]:
    """(page: line, argv after the program, the line after it) of every command line naming one of the programs;
    a line with a placeholder is left out, or, given ``stand_in``, read with it in the placeholder's place."""
    out = []
    for page in PAGES:
        for line, after in code_lines(page):
            if PLACEHOLDER.search(line):
                if stand_in is None or "..." in line or "…" in line:
                    continue
                line = PLACEHOLDER.sub(stand_in, line)
            try:
                argv = shlex.split(line)
            except ValueError:
                continue
            if argv[:3] == ["python", "-m", "ppo_bench"]:
                argv = ["ppo-bench", *argv[3:]]
            if argv and argv[0] in programs:
                out.append((f"{page.name}: {line}", argv[1:], after))
    return out


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A multirun's overrides with each sweep (``a=1,2``) at its first value: one job's config."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override():
            value = next(iter(o.sweep_string_iterator()))
            out.append(f"{o.get_key_element()}={value}")
        else:
            out.append(o.input_line)
    return out


RL = commands("ppo-bench")
LLM = commands("ppo-bench-llm")


def test_every_page_is_in_the_nav():
    import yaml

    class Loader(yaml.SafeLoader):  # mkdocs.yml's !!python/name tags, if any, are not this test's business
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    nav = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)["nav"]
    listed = {page for entry in nav for page in entry.values()}
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages == listed, f"not in mkdocs.yml's nav: {sorted(pages - listed)}; missing: {sorted(listed - pages)}"


def test_the_docs_show_commands_of_every_kind():
    assert len(RL) >= 20 and len(LLM) >= 3
    assert commands("ppo-bench-report", stand_in="runs") and commands("ppo-bench-eval", stand_in="runs")


@pytest.mark.parametrize("where, argv, after", RL, ids=[w for w, _, _ in RL])
def test_ppo_bench_command_composes_and_validates(where, argv, after, tmp_path):
    """A command composes and validates; one the page shows failing fails with the very line it shows."""
    from hydra import compose, initialize_config_dir

    from ppo_bench.common.hydra_cli import check_declared_keys, hydra_error_line
    from ppo_bench.rl.engine.config import CONF_DIR, register_configs
    from ppo_bench.rl.launch import population_specs

    flags = [a for a in argv if a.startswith("-")]
    assert set(flags) <= {"-m", "--multirun", "--help", "--version", "--cfg"}, where
    overrides = [a for a in argv if not a.startswith("-") and a != "job"]
    register_configs()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[*first_of_each_sweep(overrides), f"run_root={tmp_path}"])
        check_declared_keys(cfg)
        population_specs(cfg)
    except Exception as e:  # noqa: BLE001  (the page may show it failing)
        line = hydra_error_line(e)
        assert after.startswith("error:") and line is not None, f"{where}: {e}"
        if after.endswith("…"):  # the page shows the line's beginning (a list of options that grows)
            assert f"error: {line}".startswith(after[:-1].rstrip()), f"{where}: error: {line}"
        else:
            assert f"error: {line}" == after, where
    else:
        assert not after.startswith("error:"), f"{where}: the page says {after!r}, but it is valid"


@pytest.mark.parametrize("where, argv, after", LLM, ids=[w for w, _, _ in LLM])
def test_ppo_bench_llm_command_composes(where, argv, after):
    from hydra import compose, initialize_config_dir

    import ppo_bench.llm.launch  # noqa: F401  (registers the built-in algorithms' schemas)
    from ppo_bench.common.paths import LLM_CONF_DIR
    from ppo_bench.llm.harness.config import register_configs

    register_configs()
    with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
        compose("config", overrides=first_of_each_sweep([a for a in argv if not a.startswith("-")]))


def test_report_and_eval_commands_parse():
    from ppo_bench.analysis import report
    from ppo_bench.rl import evaluate

    for where, argv, _ in commands("ppo-bench-report", stand_in="runs"):
        report.parse_args(argv)
    for where, argv, _ in commands("ppo-bench-eval", stand_in="runs"):
        evaluate.parse_args(argv)


def test_script_commands_name_scripts_and_flags_that_exist():
    seen = 0
    for page in PAGES:
        for line, _ in code_lines(page):
            m = re.match(r"python (scripts/\w+\.py)(.*)", line)
            if not m:
                continue
            source = (REPO / m.group(1)).read_text()
            # options a script shares through a module of scripts/ it imports (llm_comparison's common_arguments)
            for module in re.findall(r"^from scripts\.(\w+) import", source, flags=re.M):
                source += (REPO / "scripts" / f"{module}.py").read_text()
            for flag in re.findall(r"(--[\w-]+)", m.group(2)):
                assert f'"{flag}"' in source, f"{page.name}: {line}: {flag} is not an option of {m.group(1)}"
            seen += 1
    assert seen >= 3


def test_the_extending_example_trains(tmp_path):
    """my_pkg, written from the extending page's own code blocks, trains through the page's own command."""
    page = (REPO / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", page, flags=re.S)
    files = {}
    for _, body in blocks:
        first = body.splitlines()[0]
        if first.startswith("# my_pkg/"):
            files[first[2:]] = body
    assert {"my_pkg/objectives.py", "my_pkg/conf/objective/my_obj.yaml"} <= set(files)
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    for folder in ("my_pkg", "my_pkg/conf"):
        (tmp_path / folder / "__init__.py").touch()
    (line,) = [x for _, body in blocks for x in body.splitlines() if x.startswith("ppo-bench extensions=[my_pkg.objectives]")]
    argv = shlex.split(line)[1:] + ["env=cartpole", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=1",
                                    "total_timesteps=128", "progress=never", "run_root=runs"]
    p = subprocess.run([sys.executable, "-m", "ppo_bench", *argv], cwd=tmp_path, capture_output=True, text=True,
                       env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "CartPole-v1/my_obj_alpha0.2/seed0  finished" in p.stdout, p.stdout
