"""TensorBoard logging for LLM runs, with the conventions of SPEC §2.7: one directory per run,
scalars under ``rewards/``, ``losses/``, ``stats/``, ``eval/``, ``charts/``, ``perf/``, sample
completions as text, and the run's hyperparameters through the HParams plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HPARAM_METRICS = ("eval/accuracy", "rewards/mean")


def flat_hparams(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as HParams-friendly scalars (lists and mappings become strings)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "rewards":
            out.update(flat_hparams(v, key + "."))
        elif v is None:
            out[key] = "null"
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


class LLMRunLogger:
    def __init__(self, run_dir: Path, hparams: dict[str, Any] | None = None):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.writer = SummaryWriter(log_dir=str(run_dir), flush_secs=30)
        if hparams is not None:
            # in the run's own event file, so the HParams tab lists the run under its own name
            for summary in hparams_summary(flat_hparams(hparams), {m: float("nan") for m in HPARAM_METRICS}):
                self.writer.file_writer.add_summary(summary)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, rows: list[dict], step: int) -> None:
        """Rows of a small table (e.g. prompt / completion / reward) as Markdown."""
        if not rows:
            return
        cols = list(rows[0])
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            lines.append("| " + " | ".join(str(r[c]).replace("|", "\\|").replace("\n", "⏎") for c in cols) + " |")
        self.writer.add_text(tag, "\n".join(lines), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
