"""What the two Hydra command lines (``ppo-bench``, ``ppo-bench-llm``) share: every error a user can cause is one
line on stderr, ``error: ...``, with exit code 2.

Hydra reports its own errors — an unknown config-group option (``env=hoper``), an unknown key
(``ppo.learning_rat=1e-3``), a value of the wrong type (``algo.epochs=abc``), a malformed override, two
commands at once (``-m ... --cfg job``), an output folder it cannot write — as several lines with exit code 1,
or as a traceback. ``run_hydra_app`` runs the app with ``HYDRA_FULL_ERROR=1``, so that those errors reach it
as exceptions, and turns each into one line. Any other exception is a bug and keeps its traceback; a user who
sets ``HYDRA_FULL_ERROR=1`` gets Hydra's own reports and tracebacks back.

Hydra's ``+key=value`` adds a key that the config does not declare, and ``++key=value`` sets or adds one;
``check_declared_keys`` refuses a key that a structured config (a dataclass schema) does not declare, so a
misspelt ``+ppo.learning_rat`` is an error instead of an option silently ignored. A free-form mapping
(``env.kwargs``, the keyword arguments of ``gymnasium.make``) takes any key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import Callable

from ppo_bench.common.errors import EXIT_OUTPUT_CLOSED, ConfigError, RunsFailed, as_line, output_closed, user_error_line
from ppo_bench.common.slurm import launch_failure_line


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _keys_of(node) -> str:
    try:
        return ", ".join(str(k) for k in node.keys())
    except Exception:  # not a mapping
        return ""


# top-level sections an earlier version had, and where their keys went: a command line of that version gets the
# new name in its one line (a CLI adds its own)
RENAMED: dict[str, str] = {}


def _omegaconf_line(ex, override: str | None = None) -> str:
    """An OmegaConf error (unknown key, wrong type, bad interpolation) as one line naming the key."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    key = getattr(ex, "full_key", None) or override or ""
    msg = _first_line(getattr(ex, "msg", None) or ex)
    if isinstance(ex, (ConfigAttributeError, ConfigKeyError)) and key:
        if key.split(".")[0] in RENAMED:
            return f"{key} is not an option; {RENAMED[key.split('.')[0]]}"
        section, _, _ = key.rpartition(".")
        options = _keys_of(getattr(ex, "parent_node", None))
        where = f"{section}'s options" if section else "top-level options"
        return f"{key} is not an option" + (f"; {where}: {options}" if options else "")
    if override:
        return f"{override}: {msg}"
    return f"{key}: {msg}" if key else msg


def hydra_error_line(ex: BaseException) -> str | None:
    """The one line a user-caused error of Hydra, OmegaConf or the file system gets; None for anything else
    (a bug: it keeps its traceback)."""
    from hydra.errors import CompactHydraException, HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(ex, ConfigError):
        return user_error_line(ex)
    if isinstance(ex, MissingConfigException) and ex.missing_cfg_file and ex.options is not None:
        group, _, choice = str(ex.missing_cfg_file).rpartition("/")
        if group:  # the structured schemas a group's files extend (``<name>_schema``) are not choices
            options = sorted(o for o in ex.options if not o.endswith("_schema"))
            return f"{group}={choice} is not one of: {', '.join(options)}"
    if isinstance(ex, OverrideParseException):
        return f"{ex.override}: {_first_line(ex.message)}"
    if isinstance(ex, CompactHydraException):
        first = _first_line(ex)
        missing = re.fullmatch(r"Could not override '([\w/]+)'\. No match in the defaults list\.", first)
        if missing:  # a group the primary config does not list (experiment=...): Hydra's own hint is on line 2
            return f"{first} Add it with +{missing.group(1)}=..."
        cause = ex.__cause__
        if isinstance(cause, OmegaConfBaseException):
            # "Could not override 'ppo.lr_x'." / "Error merging override algo.epochs=abc"
            override = first.split("override", 1)[1].strip(" .'") if "override" in first else None
            return _omegaconf_line(cause, override)
        return first
    if isinstance(ex, OmegaConfBaseException):
        return _omegaconf_line(ex)
    if isinstance(ex, HydraException):
        return _first_line(ex)
    if isinstance(ex, ValueError) and str(ex).startswith("Only one of --run, --multirun"):
        return str(ex)
    if isinstance(ex, OSError) and not isinstance(ex, HydraException):  # the one path every command shares
        line = user_error_line(ex, default_action="write")  # Hydra's own: its output folder and log file
        if line is not None:
            return line
    if ex.__cause__ is not None and ex.__cause__ is not ex:
        # a wrapped one: Hydra's logging set-up re-raises an unwritable log file's OSError as ValueError
        return hydra_error_line(ex.__cause__)
    return None


def exit_on_user_error(ex: BaseException) -> None:
    """Inside a task function: a user-caused error is one line and exit code 2 right there (a ``SystemExit``
    passes through Hydra's job runner, which would otherwise print its own line about the failed job first);
    anything else returns, for the caller to re-raise."""
    line = hydra_error_line(ex)
    if line is not None:
        print(f"error: {as_line(line)}", file=sys.stderr, flush=True)
        sys.exit(2)


def check_argv(argv: list[str]) -> None:
    """Hydra's own flags (``--cfg``, ``-m``, ...) parsed as Hydra will; a usage error as one line, not argparse's
    usage block."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str):
        raise ConfigError(f"{message} (see --help)")

    parser.error = error  # type: ignore[method-assign]
    parser.parse_args(argv)


def run_hydra_app(app: Callable[[], None], argv: list[str] | None = None) -> None:
    """Run a ``@hydra.main`` function; a user-caused error is one line, exit code 2; a launch whose runs
    failed (``RunsFailed``) is one line, exit code 1. ``--version`` prints ppo-bench's version."""
    argv = sys.argv[1:] if argv is None else argv
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        if "--version" in argv:  # ppo-bench's version, where Hydra's own flag would print Hydra's
            from ppo_bench import __version__

            print(f"ppo-bench {__version__}", flush=True)
            return
        check_argv(argv)
        os.environ["HYDRA_FULL_ERROR"] = "1"
        app()
    except RunsFailed as ex:
        if full_error:
            raise
        print(f"error: {ex}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as ex:
        if output_closed(ex):  # `ppo-bench --help | head`: the reader has what it wanted
            sys.exit(EXIT_OUTPUT_CLOSED)
        failed_job = None if full_error else launch_failure_line(ex)  # a Slurm job that ended without a result
        if failed_job is not None:
            print(f"error: {failed_job}", file=sys.stderr, flush=True)
            sys.exit(1)
        line = None if full_error else hydra_error_line(ex)
        if line is None:
            raise
        print(f"error: {as_line(line)}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def check_declared_keys(cfg, where: str = "") -> None:
    """Refuse a key that the config's structured schema does not declare (added with ``+key=...`` or
    ``++key=...``); a free-form mapping (a ``dict`` field such as ``env.kwargs``) takes any key."""
    from omegaconf import DictConfig, OmegaConf

    schema = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(schema):
        declared = [f.name for f in dataclasses.fields(schema)]
        for key in cfg.keys():
            if key not in declared:
                section = where.rstrip(".")
                place = f"{section}'s options" if section else "top-level options"
                raise ConfigError(f"{where}{key} is not an option; {place}: {', '.join(declared)}")
    for key in cfg.keys():
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            check_declared_keys(node, f"{where}{key}.")
