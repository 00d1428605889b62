"""A run's identity: the resolved settings that decide what it trains, stored with the run.

A run folder holds ``identity.json``: every training-relevant key of the run's resolved config,
flattened to dotted names (``algo.lr``, ``env.kwargs.ctrl_cost_weight``), and a fingerprint of them.
Relaunching onto the folder — ``resume``, or a sweep that finds the run finished — compares the new
config with it first: the same identity continues (or skips a finished run); a different one is
refused before anything is written, in one line naming every differing key with both values.

Which keys are left out is the caller's choice (``ignore``: logging, progress, paths, resume,
checkpoint frequency, threads — how or where a run is computed, not what). The length of training
(e.g. ``total_timesteps``) is compared by the caller, not here: raising it is the
documented way to extend a finished run.

Numbers are compared by value: ``1`` and ``1.0`` are the same setting (a YAML or command-line value
may come back as either); ``true`` is not ``1``.

A run written before ``identity.json`` existed is checked against the resolved ``config.yaml`` that
both command lines have always written beside it (``stored_keys``).

Versions of the code add config keys. A key that the stored identity lacks is accepted when its
value is the key's default (``defaults``), so a new key that leaves training as it was does not
invalidate existing runs; given any other value it is a difference. A stored key the current config
lacks (a key removed since) is a difference; a key renamed since is the caller's to translate
(``migrate``). A changed default is a difference too: the
stored value is what the run was trained with.

Nothing here knows about PPO or language models: both command lines use it with their own configs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.common.errors import ConfigError, file_action

IDENTITY = "identity.json"
LEGACY = "config.yaml"  # the resolved config every run folder holds: the identity of runs older than IDENTITY
ABSENT = object()
REMEDY = "relaunch with the run's settings, or choose another run folder"


def flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """{'algo': {'lr': 3e-4}} → {'algo.lr': 3e-4}; lists stay values; an empty mapping stays ``{}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = dict(v) if isinstance(v, Mapping) else v
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'algo.lr': 3e-4} → {'algo': {'lr': 3e-4}}: ``flatten``'s inverse."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in ignore)


def training_keys(config: Mapping, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The flattened keys of a resolved config that decide what is trained: all but those under ``ignore``
    (dotted prefixes), sorted."""
    ignore = tuple(ignore)
    return {k: v for k, v in sorted(flatten(config).items()) if not _ignored(k, ignore)}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _by_value(value: Any) -> Any:
    """``value`` with every whole float as an int (1.0 → 1, inside lists and mappings too): the form compared."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _by_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_by_value(v) for v in value]
    return value


def fingerprint(keys: Mapping[str, Any]) -> str:
    """A short hash of the training keys (sha256 of their canonical JSON, numbers by value, 16 hex digits)."""
    return hashlib.sha256(_canonical(_by_value(dict(keys))).encode()).hexdigest()[:16]


def fingerprints(keys: Mapping[str, Any]) -> tuple[str, str]:
    """The fingerprints a run's identity.json may carry for these keys: today's, and the one ppo-bench wrote before
    numbers were compared by value (sha256 of the keys' canonical JSON as written, 16 hex digits)."""
    return fingerprint(keys), hashlib.sha256(_canonical(dict(keys)).encode()).hexdigest()[:16]


def _same(a: Any, b: Any) -> bool:
    return _canonical(_by_value(a)) == _canonical(_by_value(b))


def differences(stored: Mapping[str, Any], current: Mapping[str, Any],
                defaults: Mapping[str, Any] | None = None) -> list[tuple[str, Any, Any]]:
    """(key, stored value, current value) for every key that differs; ``ABSENT`` marks a missing side.
    A key only the current config has is no difference when its value is its default."""
    defaults = defaults or {}
    out = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key, ABSENT), current.get(key, ABSENT)
        if a is ABSENT and key in defaults and _same(b, defaults[key]):
            continue
        if a is ABSENT or b is ABSENT or not _same(a, b):
            out.append((key, a, b))
    return out


def _show(v: Any) -> str:
    return "(absent)" if v is ABSENT else _canonical(v)


def describe(diffs: list[tuple[str, Any, Any]]) -> str:
    """'algo.lr: 0.0003 (the run) vs 0.01 (now), algo.epochs: 10 (the run) vs 3 (now)'."""
    return ", ".join(f"{k}: {_show(a)} (the run) vs {_show(b)} (now)" for k, a, b in diffs)


def write_identity(run_dir: str | Path, keys: Mapping[str, Any], **extra: Any) -> str:
    """Store the run's identity (and ``extra`` plain data, e.g. its length) in ``run_dir``; returns its
    fingerprint."""
    fp = fingerprint(keys)
    atomic_write_text(Path(run_dir) / IDENTITY,
                      json.dumps({"fingerprint": fp, **extra, "config": dict(keys)}, indent=1, default=str) + "\n")
    return fp


def read_identity(run_dir: str | Path) -> dict | None:
    """The stored identity of the run in run_dir ({'fingerprint', 'config', ...}), or None if it has none.
    The file is verified: its fingerprint must be that of its keys, so a damaged or hand-edited identity is not
    taken for a run's settings. An unreadable or damaged identity file is a ConfigError naming it."""
    path = Path(run_dir) / IDENTITY
    if not path.exists():
        return None
    try:
        with file_action("read", path):
            data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise ValueError("no 'config' mapping")
        if data.get("fingerprint") not in fingerprints(data["config"]):
            raise ValueError("its fingerprint is not that of its keys: changed or damaged since it was written")
        return data
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError and UnicodeDecodeError
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}: {_one_line(e)}); move that run folder away "
                          "or choose another run folder") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""


def read_config(run_dir: str | Path, ignore: Iterable[str] = (),
                migrate: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None) -> dict:
    """The run's resolved config (its config.yaml, nested), verified against its identity.json where it has one:
    the training keys of the one (all but ``ignore``, through ``migrate``) must be those of the other. A missing,
    unreadable or disagreeing config.yaml (or a damaged identity.json) is a ConfigError naming the file."""
    migrate = migrate or dict
    path = Path(run_dir) / LEGACY
    try:
        from omegaconf import OmegaConf

        with file_action("read", path):
            text = path.read_text(encoding="utf-8")
        config = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
        if not isinstance(config, dict):
            raise ValueError(f"holds a YAML {type(config).__name__}, not a mapping")
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: {Path(run_dir)} holds no run's settings") from None
    except Exception as e:  # OSError, UnicodeDecodeError, YAML's and OmegaConf's errors: a damaged or foreign file
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}: {_one_line(e)})") from None
    stored = read_identity(run_dir)
    if stored is not None:
        diffs = differences(migrate(stored["config"]), training_keys(migrate(flatten(config)), ignore))
        if diffs:
            shown = ", ".join(f"{k}: {_show(b)} here, {_show(a)} in {IDENTITY}" for k, a, b in diffs[:3])
            raise ConfigError(f"{path} disagrees with the run's {IDENTITY} ({shown}): one of them was changed or "
                              "damaged since the run wrote them")
    return config


def stored_keys(run_dir: str | Path, ignore: Iterable[str] = (),
                migrate: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The training keys the run in run_dir was trained with: its identity.json, or for a run written before
    those existed, the keys (all but ``ignore``) of its config.yaml; None for a folder with neither.
    ``migrate`` renames the keys of an older version's run to today's names (the caller's, flat → flat)."""
    migrate = migrate or dict
    stored = read_identity(run_dir)
    if stored is not None:
        return migrate(stored["config"])
    if not (Path(run_dir) / LEGACY).exists():
        return None
    return training_keys(migrate(flatten(read_config(run_dir))), ignore)


def refuse_if_different(run_dir: str | Path, stored: Mapping[str, Any], keys: Mapping[str, Any],
                        defaults: Mapping[str, Any] | None = None, remedy: str = REMEDY) -> None:
    """ConfigError, one line naming every differing key with both values, when the run in run_dir was
    trained with ``stored`` keys that differ from ``keys``; ``remedy`` ends the line."""
    diffs = differences(stored, keys, defaults)
    if diffs:
        raise ConfigError(f"run {run_dir} was trained with other settings: {describe(diffs)}; {remedy}")


def check_identity(run_dir: str | Path, keys: Mapping[str, Any], ignore: Iterable[str] = (),
                   defaults: Mapping[str, Any] | None = None, remedy: str = REMEDY,
                   migrate: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None) -> None:
    """Refuse (``refuse_if_different``) when run_dir holds a run (``stored_keys``: identity.json, else
    config.yaml less ``ignore``, both through ``migrate``) trained with keys that differ from ``keys``; a folder
    with neither passes."""
    stored = stored_keys(run_dir, ignore, migrate)
    if stored is not None:
        refuse_if_different(run_dir, stored, keys, defaults, remedy)
