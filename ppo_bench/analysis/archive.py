"""Carry finished runs between machines without their checkpoints: what a report reads, in small files.

A sweep too long for one sitting on one machine (Table 1: 231 runs) can be finished over several, on machines
that do not share a file system: each sitting packs the runs it finished, and the next unpacks them into its
run root before relaunching the sweep, which then skips them (finished, same identity) and trains the rest.

    python -m ppo_bench.analysis.archive pack runs/table1 results/table1_runs      # → <env>/<setting>.npz
    python -m ppo_bench.analysis.archive unpack results/table1_runs runs/table1    # → run folders again
    python -m ppo_bench.analysis.archive unpack results/table1_runs runs/figure3 --settings clip_eps0.2

An archive holds, per finished run, exactly what ``ppo-bench-report`` and ``scripts/learning_check.py`` read:
every episode's end step and return (``charts/episodic_return``, as logged: float32 values, exact), and the
run's ``config.yaml``, ``status.json`` and ``identity.json`` as written. Unpacking writes them back and logs
the returns into a fresh TensorBoard event file, so the report's numbers from an unpacked run are the same as
from the original folder. A run carries to any sweep whose run of the same folder name has its identity: Figure 3's
PPO runs (``<env>/clip_eps0.2/seed<k>``, ε = 0.2 at the Table-1 settings, seeds 0-2) are Table 1's, so the
last command above spares experiment=figure3 their 21M steps. Nothing else of a run travels: its other scalars, its checkpoints (an unpacked run
cannot be continued; raising ``total_timesteps`` retrains it from the start) and its HParams.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np

from ppo_bench.analysis.runs import RETURN_TAG, SEED_DIR, find_runs, read_episodes
from ppo_bench.common.atomic import atomic_write_bytes, atomic_write_text
from ppo_bench.common.errors import ConfigError, OneLineArgumentParser, check_writable, os_error_line, run_command
from ppo_bench.common.tblog import write_scalar_events

FILES = ("config.yaml", "status.json", "identity.json")


def pack(run_root: Path, out_dir: Path, envs: list[str] | None = None) -> dict[str, int]:
    """Write ``<out_dir>/<env>/<setting>.npz`` with every finished run of each setting under ``run_root`` (of the
    ``envs`` only, if given; one file per setting keeps each well under a megabyte); returns the number of runs
    packed per env. A setting's archive is rewritten whole."""
    found = find_runs([run_root])
    if envs:
        unknown = sorted(set(envs) - {r.env for r in found})
        if unknown:
            raise ConfigError(f"no run of {', '.join(unknown)} under {run_root}")
    runs = [r for r in found if r.status == "finished" and (envs is None or r.env in envs)]
    packed: dict[str, int] = {}
    for env, setting in sorted({(r.env, r.setting) for r in runs}):
        arrays: dict[str, np.ndarray] = {}
        names = []
        for r in sorted((r for r in runs if (r.env, r.setting) == (env, setting)), key=lambda r: r.seed):
            name = f"seed{r.seed}"
            names.append(name)
            steps, returns = read_episodes(r.dir)
            arrays[f"{name}|steps"] = steps.astype(np.int64)
            arrays[f"{name}|returns"] = returns.astype(np.float32)  # logged as float32: exact
            files = {f: (r.dir / f).read_text() for f in FILES if (r.dir / f).exists()}
            arrays[f"{name}|files"] = np.array(json.dumps(files))
        arrays["runs"] = np.array(names)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(out_dir / env / f"{setting}.npz", buf.getvalue())
        packed[env] = packed.get(env, 0) + len(names)
    return packed


def unpack(archive_dir: Path, run_root: Path, settings: list[str] | None = None, events: bool = True) -> dict[str, int]:
    """Write every run of the archives ``<archive_dir>/<env>/<setting>.npz`` (of the ``settings`` only, if given)
    into ``<run_root>/<env>/<setting>/seed<k>/``; a folder that already holds a run is refused (ConfigError)
    before anything is written. ``events=False`` writes the run's files but not its returns' event file (what a
    relaunched sweep reads to skip it, without what only the report reads)."""
    archives = sorted(Path(archive_dir).glob("*/*.npz"))
    if not archives:
        raise ConfigError(f"no archive (<env>/<setting>.npz) in {archive_dir}")
    if settings:
        present = {a.stem for a in archives}
        unknown = sorted(set(settings) - present)
        if unknown:
            raise ConfigError(f"no archive of setting {', '.join(unknown)} in {archive_dir}; it has "
                              f"{', '.join(sorted(present))}")
        archives = [a for a in archives if a.stem in settings]
    loaded = [(a.parent.name, a.stem, read_archive(a)) for a in archives]  # every archive whole, or nothing written
    for env, setting, data in loaded:
        for name in data["runs"]:
            d = Path(run_root) / env / setting / str(name)
            if d.exists() and any(d.iterdir()):
                raise ConfigError(f"{d} already holds a run; unpack into an empty run root or remove it")
    counts: dict[str, int] = {}
    for env, setting, data in loaded:
        for name in data["runs"]:
            d = Path(run_root) / env / setting / str(name)
            d.mkdir(parents=True, exist_ok=True)
            for f, text in data[f"{name}|files"].items():
                atomic_write_text(d / f, text)
            if not events:
                continue
            write_scalar_events(d, RETURN_TAG, data[f"{name}|steps"].tolist(), data[f"{name}|returns"].tolist())
        counts[env] = counts.get(env, 0) + len(data["runs"])
    return counts


def read_archive(path: Path) -> dict:
    """One setting's archive, read whole and checked: every member (a zip's CRC-32 checks each as it is read), a
    run name ``seed<k>`` per run, its steps (integers) and returns (as many numbers), and its files, only those a
    run folder holds (``FILES``), as text. A damaged or foreign archive is a ConfigError naming it, before anything
    is written."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        out: dict = {"runs": [str(n) for n in data["runs"].tolist()]}
        for name in out["runs"]:
            if not SEED_DIR.fullmatch(name):
                raise ValueError(f"a run named {name!r}, not seed<k>")
            steps, returns = data[f"{name}|steps"], data[f"{name}|returns"]
            if steps.ndim != 1 or returns.shape != steps.shape or not np.issubdtype(steps.dtype, np.integer) \
                    or not np.issubdtype(returns.dtype, np.floating):
                raise ValueError(f"{name}'s steps and returns are not one integer and one number per episode")
            files = json.loads(str(data[f"{name}|files"]))
            if not isinstance(files, dict) or not set(files) <= set(FILES) or \
                    not all(isinstance(t, str) for t in files.values()):
                raise ValueError(f"{name}'s files are not {', '.join(FILES)} as text")
            out[f"{name}|steps"], out[f"{name}|returns"], out[f"{name}|files"] = steps, returns, files
        return out
    except ConfigError:
        raise
    except Exception as e:  # zipfile's BadZipFile (a bad CRC), zlib, EOF, KeyError, JSON, an unreadable file
        line = os_error_line(e) if isinstance(e, OSError) else None
        why = line or f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        raise ConfigError(f"archive {path} is unreadable or damaged ({why}); nothing was unpacked") from None


def main(argv: list[str] | None = None) -> int:
    """The command: every error a user can cause in one line, exit code 2 (``ppo_bench.common.errors``)."""
    return run_command(lambda: archive_command(argv))


def archive_command(argv: list[str] | None = None) -> int:
    ap = OneLineArgumentParser(prog="python -m ppo_bench.analysis.archive", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="finished runs of a run root → <archive dir>/<env>/<setting>.npz")
    p.add_argument("run_root", type=Path)
    p.add_argument("archive_dir", type=Path)
    p.add_argument("--envs", default=None, help="comma-separated env ids (default: every env with a finished run)")
    u = sub.add_parser("unpack", help="<archive dir>/<env>/<setting>.npz → run folders under a run root")
    u.add_argument("archive_dir", type=Path)
    u.add_argument("run_root", type=Path)
    u.add_argument("--settings", default=None, help="comma-separated settings (e.g. clip_eps0.2: Figure 3's PPO runs "
                                                   "are Table 1's ε = 0.2 runs); default: every archive")
    for parser in (p, u):
        parser.error = ap.error  # type: ignore[method-assign]
    args = ap.parse_args(argv)
    if args.command == "pack":
        if not args.run_root.is_dir():
            raise ConfigError(f"run root {args.run_root} is not a folder")
        check_writable(args.archive_dir, folder=True)
        counts = pack(args.run_root, args.archive_dir, args.envs.split(",") if args.envs else None)
    else:
        counts = unpack(args.archive_dir, args.run_root, args.settings.split(",") if args.settings else None)
    for env, n in counts.items():
        print(f"{env}: {n} run(s) {'packed into' if args.command == 'pack' else 'unpacked from'} "
              f"{args.archive_dir / env}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
