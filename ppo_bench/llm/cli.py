"""`ppo-bench-llm`: the Hydra app that trains a small causal LM with GRPO, DPO, KTO, PPO or a reward model (docs/llm.md).

Examples:
  ppo-bench-llm +experiment=grpo_addition          the reference run (SmolLM2-135M, 2-digit addition)
  ppo-bench-llm model=tiny task=reverse algo.steps=20
  ppo-bench-llm -m algo.loss_type=grpo,dapo,dr_grpo seed=0,1
  ppo-bench-llm algo=dpo algo.loss=ipo model=tiny algo.steps=20
  ppo-bench-llm algo=kto model=tiny algo.steps=20
  ppo-bench-llm algo=ppo model=tiny task=reverse algo.steps=20
  ppo-bench-llm algo=reward_model model=tiny task=reverse algo.steps=20

In a multirun, a swept key that the run folder's name does not spell out is added to it
(``sweep_run_name``), so that every job trains in its own folder. The modules named by ``extensions=[...]`` on the
command line (and every installed ``ppo_bench.extensions`` entry point) are imported before Hydra composes the
config, so that an algorithm of one's own is registered, its schema too, when its YAML file names it.
"""

from __future__ import annotations

import os
import re
import sys

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from ppo_bench.common.errors import ConfigError, NonFiniteLoss, RunsFailed
from ppo_bench.common.extensions import import_extensions
from ppo_bench.common.hydra_cli import exit_on_user_error, run_hydra_app
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.harness.config import algo_run_tags, register_configs
from ppo_bench.llm.launch import train_from_config

register_configs()


SWEEP_FUNCTIONS = ("range(", "choice(", "glob(", "interval(")
# the groups and keys a run folder is always named after (conf_llm/config.yaml's run_name)
GROUP_KEYS = {"task": "task.name", "model": "model.name", "algo": "algo.name"}


def swept_values(value: str) -> bool:
    """Whether an override's value is a Hydra sweep (a,b / range(...) / choice(...) / glob(...))."""
    if value.startswith(SWEEP_FUNCTIONS):
        return True
    depth, quote = 0, None
    for ch in value:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


def default_run_name() -> str:
    """conf_llm/config.yaml's run_name template, unresolved."""
    return OmegaConf.to_container(OmegaConf.load(LLM_CONF_DIR / "config.yaml"), resolve=False)["run_name"]


def named_keys(algos: list[str]) -> set[str]:
    """The config keys every run folder name of these algorithms already spells out."""
    raw = default_run_name()
    names = {m for m in re.findall(r"\$\{([\w.]+)\}", raw)}
    tags = algo_run_tags()
    per_algo = [{f"algo.{k}" for k in re.findall(r"\$\{\.(\w+)\}", tags[a])} for a in algos if a in tags]
    return names | (set.intersection(*per_algo) if per_algo else set())


def sweep_run_name(argv: list[str]) -> str | None:
    """For a multirun whose swept keys are not all in the run folder's name: a run_name override that
    adds each of them (``..._temperature${algo.temperature}/seed0``), so that every job has its own
    folder. None when nothing needs adding, or the user names the runs (run_name=...)."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return None
    swept, algos = [], ["grpo"]
    for arg in argv:
        m = re.fullmatch(r"[+~]{0,2}([\w.]+)=(.*)", arg)
        if not m:
            continue
        key, value = m.groups()
        if key in ("run_name", "hydra.sweep.subdir"):
            return None
        if key == "algo":
            algos = value.split(",")
        if swept_values(value):
            swept.append(GROUP_KEYS.get(key, key))
    named = named_keys(algos)
    extra = [k for k in swept if k not in named and not k.startswith("hydra.") and k != "experiment"]
    if not extra:
        return None
    raw = default_run_name()
    suffix = "".join(f"_{k.rsplit('.', 1)[-1]}${{{k}}}" for k in extra)
    head, sep, last = raw.rpartition("/")
    return f"run_name={head}{suffix}{sep}{last}" if sep else f"run_name={raw}{suffix}"


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def report(s: dict) -> None:
    if s.get("skipped"):
        print(f"already finished (resume=true skips it): {s['run_dir']}")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    steps, updates = s.get("steps"), s.get("updates", s.get("steps"))
    skipped = "" if updates == steps else f", {updates} of them with an update (the others' rewards were all equal: no learning signal)"
    measure = "held-out pair accuracy" if s.get("algo") == "reward model" else "held-out greedy accuracy"
    print(f"{s.get('model')} on {s.get('task')}: {steps} {s.get('algo', 'GRPO')} steps in {s.get('wall_s')} s{skipped}; "
          f"{measure} {fmt(s.get('acc_before'))} -> {fmt(s.get('acc_after'))} (n={s.get('n_eval')})")
    if "seconds_per_step" in s:
        print("seconds per step: " + ", ".join(f"{k} {v}" for k, v in s["seconds_per_step"].items()))
    print(f"run folder: {s['run_dir']}\n  open it with:  tensorboard --logdir {s['run_dir']}")


@hydra.main(version_base="1.3", config_path=str(LLM_CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    progress = cfg.progress == "always" or (cfg.progress == "auto" and interactive())
    try:
        summary = train_from_config(cfg, progress=progress)
    except NonFiniteLoss as e:
        raise RunsFailed(f"{e}; the last good checkpoint and the logs are kept") from None
    except Exception as e:
        exit_on_user_error(e)  # a bad option, an unreadable data file, an unwritable run folder: one line, exit 2
        raise
    report(summary)


def extensions_in(argv: list[str]) -> list[str]:
    """The modules an ``extensions=[a.b,c]`` (or ``+extensions=...``, ``extensions=a.b``) override names."""
    found = [a for a in argv if re.match(r"[+~]{0,2}extensions=", a)]
    try:
        overrides = OverridesParser.create().parse_overrides(found)
    except Exception as e:  # Hydra reports it again, in its own words, as one line
        raise ConfigError(f"{' '.join(found)}: {e}") from None
    names: list[str] = []
    for o in overrides:
        value = o.value()
        names += [str(v) for v in value] if isinstance(value, list) else [str(value)] if isinstance(value, str) else []
    return names


def main() -> None:
    try:  # before Hydra composes the config: an algorithm of one's own registers its schema as it is imported
        import_extensions(extensions_in(sys.argv[1:]))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    extra = sweep_run_name(sys.argv[1:])
    if extra:
        sys.argv.append(extra)
    run_hydra_app(app)


if __name__ == "__main__":
    main()
