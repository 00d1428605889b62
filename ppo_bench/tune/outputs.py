"""What a study leaves beside its runs: the best trial's settings as a preset that ``ppo-bench preset=<name>`` loads,
Optuna's figures of the optimisation history and the parameters' importances, and a table of every trial."""

from __future__ import annotations

import csv
import datetime
import io
import math
from pathlib import Path
from typing import Any

import yaml

from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.identity import unflatten
from ppo_bench.common.paths import CONF_DIR
from ppo_bench.tune.space import trained_value

MARK = "# Tuned by ppo-bench-tune"  # the second line of a preset it wrote, and may write again
BEST = "best.yaml"


def preset_text(study, space_fixed: dict[str, str], settings) -> str:
    """The best trial's searched settings (and the space's fixed ones) as a preset: ``# @package _global_``, so
    that it sets its keys over the config groups as conf/preset/ppo1_2017_07.yaml does."""
    best = study.best_trial
    values: dict[str, Any] = {k: yaml.safe_load(v) for k, v in space_fixed.items()}
    values.update({k: trained_value(v) for k, v in best.params.items()})
    body: dict[str, Any] = {}
    if "objective" in values:  # a tuned choice of the surrogate is a choice of the objective group
        body["defaults"] = [{"override /objective": values.pop("objective")}]
    body.update(unflatten(values))
    identity = study.user_attrs.get("identity", {})
    header = [
        "# @package _global_",
        MARK + f" on {datetime.date.today().isoformat()}: trial {best.number} of {len(study.trials)} in {settings.study}",
        f"# value {best.value:.6g}: the mean over {', '.join(identity.get('envs') or ['the config env'])} and seeds "
        f"{identity.get('seeds')} of the normalised score (random policy 0, reference 1)",
        f"# trained with: {' '.join(identity.get('overrides') or []) or '(the defaults)'}",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)


def preset_path(preset: str) -> Path:
    """A preset by name (ppo-bench's conf/preset/<name>.yaml) or a YAML file's path."""
    if preset.endswith((".yaml", ".yml")) or "/" in preset:
        return Path(preset)
    if not preset.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"--preset {preset}: a name of letters, digits, '_' and '-', or a .yaml path")
    return CONF_DIR / "preset" / f"{preset}.yaml"


def write_preset(text: str, path: Path) -> None:
    """Write a preset, never over one that ppo-bench-tune did not write (conf/preset/ppo1_2017_07.yaml)."""
    if path.exists() and not any(line.startswith(MARK) for line in path.read_text().splitlines()[:2]):
        raise ConfigError(f"--preset: {path} exists and was not written by ppo-bench-tune; choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def write_trials_table(study, path: Path) -> None:
    """Every trial: number, state, value, its settings, its last evaluation's step, why it ended."""
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["number", "state", "value", *keys, "last_step", "end", "runs", "seconds"])
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else ""
        w.writerow([t.number, t.state.name, "" if t.value is None else f"{t.value:.6g}",
                    *(trained_value(t.params[k]) if k in t.params else "" for k in keys), max(t.intermediate_values, default=""),
                    t.user_attrs.get("end", ""), t.user_attrs.get("runs", ""), f"{seconds:.1f}" if seconds != "" else ""])
    atomic_write_text(path, out.getvalue())


def write_figures(study, folder: Path) -> list[Path]:
    """Optuna's own matplotlib figures: the optimisation history and the parameters' importances (PED-ANOVA,
    Optuna's default). The importances need two finished trials whose settings differ; without them, no figure."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    written = []
    finished = [t for t in study.get_trials(deepcopy=False) if t.value is not None and math.isfinite(t.value)]
    plots = [("history.png", plot_optimization_history)]
    if len(finished) >= 2:
        plots.append(("importances.png", plot_param_importances))
    for name, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning on its matplotlib module
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as e:  # e.g. every finished trial has the same settings
                print(f"no {name}: {e}")
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(folder / name)
    return written
