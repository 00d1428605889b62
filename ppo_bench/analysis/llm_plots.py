"""Figures of an LM run (``ppo-bench-llm``) regenerated from its own TensorBoard logs, no retraining: the reward and
held-out accuracy curves of the reference runs (``scripts/llm_reference.py``) and the DPO variants' log-probs
(``scripts/llm_dpo_variants.py``)."""

from __future__ import annotations

import io
from pathlib import Path

from ppo_bench.common.atomic import atomic_write_bytes
from ppo_bench.common.tblog import read_scalars as read_events
from ppo_bench.llm.harness.models import require


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run folder as (step, value), sorted by step; after a resume the last write of a step wins."""
    return {tag: sorted(dict(zip(s.steps.tolist(), s.values.tolist())).items()) for tag, s in read_events(run_dir).items()}


def moving_average(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


# the training-reward curves a run may have logged: GRPO's, and PPO's (TRL's names)
REWARD_CURVES = (("rewards/mean", "reward (weighted sum)", "tab:blue"), ("rewards/correct/mean", "exact-match reward", "tab:green"),
                 ("objective/scores", "sequence reward", "tab:blue"), ("objective/rlhf_reward", "reward − β·KL", "tab:purple"))


def plot_llm_run(run_dir: str | Path, out_png: str | Path, title: str | None = None, window: int = 10, algo: str = "GRPO") -> Path:
    """Two panels: training reward per step (and its moving average), held-out greedy accuracy."""
    require("matplotlib", hint="pip install 'ppo-bench[analysis]'", what="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = read_scalars(run_dir)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for tag, label, colour in REWARD_CURVES:
        if tag in s and (tag != "rewards/correct/mean" or s[tag] != s.get("rewards/mean", s.get("objective/scores"))):
            steps, vals = zip(*s[tag])
            ax1.plot(steps, vals, color=colour, alpha=0.25, lw=1)
            ax1.plot(steps, moving_average(list(vals), window), color=colour, lw=2, label=f"{label}, {window}-step mean")
    ax1.set(xlabel=f"{algo} step", ylabel="mean reward of the sampled completions", title="training reward")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="upper left", fontsize=8)
    if "eval/accuracy" in s:
        n = dict(s.get("eval/n", []))
        full_n = max(n.values()) if n else None
        steps, acc = zip(*s["eval/accuracy"])
        ax2.plot(steps, acc, color="tab:red", lw=1.5, alpha=0.6)
        full = [(st, a) for st, a in zip(steps, acc) if n.get(st, full_n) == full_n]
        part = [(st, a) for st, a in zip(steps, acc) if n.get(st, full_n) != full_n]
        if part:
            ax2.scatter(*zip(*part), color="tab:red", s=18, label=f"first {int(min(n[st] for st, _ in part))} held-out problems")
        if full:
            ax2.scatter(*zip(*full), color="black", s=40, zorder=3, label=f"all {int(full_n) if full_n else ''} held-out problems")
            for st, a in full:
                ax2.annotate(f"{a:.0%}", (st, a), textcoords="offset points", xytext=(4, 6), fontsize=9)
        ax2.legend(loc="upper left", fontsize=8)
    ax2.set(xlabel=f"{algo} step", ylabel="greedy exact-match accuracy", title="held-out accuracy", ylim=(0, 1))
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(out_png, buf.getvalue())
