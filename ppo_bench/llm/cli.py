"""`ppo-bench-llm`: the Hydra app that trains a small causal LM with GRPO or DPO (docs/llm.md).

Examples:
  ppo-bench-llm +experiment=grpo_addition          the reference run (SmolLM2-135M, 2-digit addition)
  ppo-bench-llm model=tiny task=reverse algo.steps=20
  ppo-bench-llm -m algo.loss_type=grpo,dapo,dr_grpo seed=0,1
  ppo-bench-llm algo=dpo algo.loss=ipo model=tiny algo.steps=20
"""

from __future__ import annotations

import os
import re
import sys

import hydra
from omegaconf import DictConfig

from ppo_bench.errors import ConfigError, NonFiniteLoss
from ppo_bench.llm.config import LLM_CONF_DIR, register_configs

register_configs()
GROUPS = ("model", "task", "algo", "experiment")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (LLM_CONF_DIR / group).glob("*.yaml"))


def check_group_overrides(argv: list[str]) -> None:
    """Unknown config-group choices (task=foo) as one line, before Hydra composes anything."""
    for arg in argv:
        m = re.fullmatch(r"[+~]{0,2}(model|task|algo|experiment)=([\w,.\-]*)", arg)
        if not m:
            continue
        group, value = m.groups()
        allowed = group_options(group)
        for choice in filter(None, value.split(",")):
            if choice not in allowed:
                raise ConfigError(f"{group}={choice!r} is not one of: {', '.join(allowed)}")


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def report(s: dict) -> None:
    if s.get("skipped"):
        print(f"already finished (resume=true skips it): {s['run_dir']}")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"{s.get('model')} on {s.get('task')}: {s.get('steps')} {s.get('algo', 'GRPO')} steps in {s.get('wall_s')} s; "
          f"held-out greedy accuracy {fmt(s.get('acc_before'))} -> {fmt(s.get('acc_after'))} (n={s.get('n_eval')})")
    if "seconds_per_step" in s:
        print("seconds per step: " + ", ".join(f"{k} {v}" for k, v in s["seconds_per_step"].items()))
    print(f"run folder: {s['run_dir']}\n  open it with:  tensorboard --logdir {s['run_dir']}")


@hydra.main(version_base="1.3", config_path=str(LLM_CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    if cfg.algo.name == "dpo":
        from ppo_bench.llm.dpo_train import train_from_config
    else:
        from ppo_bench.llm.train import train_from_config

    progress = cfg.progress == "always" or (cfg.progress == "auto" and interactive())
    try:
        summary = train_from_config(cfg, progress=progress)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except NonFiniteLoss as e:
        print(f"error: {e}; the last good checkpoint and the logs are kept", file=sys.stderr, flush=True)
        # raised, not exited, so that the other jobs of a Hydra multirun still run
        raise RuntimeError(str(e)) from None
    report(summary)


def main() -> None:
    try:
        check_group_overrides(sys.argv[1:])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    app()


if __name__ == "__main__":
    main()
