"""A population: the runs one process trains together (README, "Populations: many runs in one process"). A single run is a population of one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def setting_name(objective: dict) -> str:
    """'clip_eps0.2', 'kl_adaptive_beta1_kl_target0.01', 'none': reads like the sweep in TensorBoard."""
    parts = [objective["name"]] + [f"{k}{v:g}" for k, v in sorted(objective.items()) if k != "name"]
    return "_".join(parts)


@dataclass(frozen=True)
class RunSpec:
    env_id: str
    objective: dict
    seed: int
    root: str
    algo: str = "ppo"

    @property
    def setting(self) -> str:
        """PPO's runs are named by their objective setting, any other algorithm's by its name."""
        return setting_name(self.objective) if self.algo == "ppo" else self.algo

    @property
    def name(self) -> str:
        return f"{self.env_id}/{self.setting}/seed{self.seed}"

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.name


def expand(env_id: str, settings: list[dict], seeds: list[int], root: str, algo: str = "ppo") -> list[RunSpec]:
    return [RunSpec(env_id, s, seed, root, algo) for s in settings for seed in seeds]
