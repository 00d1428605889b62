"""The LM algorithms ``ppo-bench-llm`` can train, by name: filled by ``@register_lm_algorithm`` where each is defined.

An algorithm is a class whose object the run harness (``run.LMRun``) holds and calls — composition, not
inheritance: the harness does the held-out evaluation, checkpoints and resume, the logs and the summary for every
algorithm alike. ``LMAlgorithm`` below is the whole interface, with the defaults of its optional parts:

    build(cfg, run_dir)   class method: load what the algorithm needs (``run.load_run_parts``, a reference, a reward
                          model), make the ``LMRun`` and attach an instance to it
    models_held(algo)     static: (language models in memory while it trains, which ones), from its ``algo`` config
    label                 the name the summary and the report give it ("GRPO", "DPO (sigmoid)", ...)
    phases                the ``perf/<phase>_s`` timings the summary's seconds per step splits into
    parameters()          what the optimizer trains (the policy's, plus any head)
    param_groups()        optional: the same parameters as AdamW groups, a group's own learning rate as "base_lr"
                          (PPO's value head with algo.vf_lr); the schedule scales every group alike
    prepare(resuming)     work before the first step (the preference methods: their pairs and reference log-probs)
    train_step()          one step: its metrics, ``stats/optimizer_steps`` among them
    evaluate_extra()      its own held-out figures, merged into each evaluation (or None)
    state_dict() / load_state_dict(state)   the state a resume needs beyond the policy and optimizer (a head, β)
    summary_extra(summary), progress_postfix(metrics), save_extra(folder)

Its settings are a dataclass (``config=``), stored in Hydra's ConfigStore as ``algo/<name>_schema`` when the class is
registered, so that ``conf_llm/algo/<name>.yaml`` names it in its defaults; a static ``check(algo)`` on that dataclass
holds the checks a schema cannot express. Adding an algorithm = one folder (``ppo_bench/llm/algorithms/<name>/``, or
a module of one's own named in ``extensions``) + one YAML file in a ``conf_llm/algo/`` folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from ppo_bench.common.errors import ConfigError

LM_ALGORITHMS: dict[str, type["LMAlgorithm"]] = {}


class LMAlgorithm:
    """What the run harness calls on the algorithm it holds (the module docstring lists it), with the defaults of
    the optional parts."""

    name: ClassVar[str]  # set by register_lm_algorithm
    config: ClassVar[type]  # its settings' dataclass, set by register_lm_algorithm
    label: str = ""
    phases: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: Path):
        """The ``run.LMRun`` of ``cfg``, with an instance of this class attached (``run.attach``)."""
        raise NotImplementedError

    @staticmethod
    def models_held(algo) -> tuple[int, str]:
        return 1, "policy"

    def parameters(self) -> list[torch.nn.Parameter]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.parameters())}]

    def prepare(self, resuming: bool) -> None:
        pass

    def train_step(self) -> dict[str, float]:
        raise NotImplementedError

    def evaluate_extra(self) -> dict | None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def summary_extra(self, summary: dict) -> None:
        pass

    def progress_postfix(self, metrics: dict) -> str:
        return f"step_s={metrics['perf/step_s']:.1f}"

    def save_extra(self, folder: Path) -> None:
        pass


def register_lm_algorithm(name: str, config: type):
    """Class decorator: train the class as ``algo=<name>``, its settings validated by the dataclass ``config``
    (a ``conf_llm/algo/<name>.yaml`` names ``<name>_schema`` in its defaults)."""

    def register(cls):
        if name in LM_ALGORITHMS and LM_ALGORITHMS[name] is not cls:
            raise ValueError(f"LM algorithm {name!r} registered twice: {LM_ALGORITHMS[name].__module__} and {cls.__module__}")
        cls.name, cls.config = name, config
        LM_ALGORITHMS[name] = cls
        ConfigStore.instance().store(group="algo", name=f"{name}_schema", node=config)
        return cls

    return register


def lm_algorithm(name: str) -> type[LMAlgorithm]:
    if name not in LM_ALGORITHMS:
        raise ConfigError(f"algo.name={name!r} is not one of: {', '.join(sorted(LM_ALGORITHMS)) or '(none registered)'} "
                          "(an algorithm of your own: name its module in extensions)")
    return LM_ALGORITHMS[name]
