"""Held-out evaluation: greedy decoding, batched, scored by the task's exact-match reward (docs/llm.md, "Evaluation and logs")."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from ppo_bench.llm.rewards import weighted_rewards
from ppo_bench.llm.sampling import generate
from ppo_bench.llm.tasks import Example


@torch.no_grad()
def greedy_eval(
    model,
    tokenizer,
    examples: Sequence[Example],
    prompts: Sequence[str],
    reward_fns: Mapping[str, Callable[..., float]],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    eos_ids: list[int] | None = None,
    n_samples: int = 4,
) -> dict:
    """Accuracy (mean of the ``correct`` reward), every reward's mean, completion length, truncation,
    and the first ``n_samples`` (prompt, completion, answer, correct) for a human to read."""
    names = list(reward_fns)
    per_fn: dict[str, list[float]] = {k: [] for k in names}
    lengths, truncated, samples = [], [], []
    for start in range(0, len(examples), batch_size):
        ex = examples[start : start + batch_size]
        pr = list(prompts[start : start + batch_size])
        out = generate(model, tokenizer, pr, n=1, max_new_tokens=max_new_tokens, greedy=True, eos_ids=eos_ids)
        _, values = weighted_rewards(reward_fns, {k: 1.0 for k in names}, pr, out.texts, [e.reward_fields() for e in ex])
        for k in names:
            per_fn[k].extend(values[k].tolist())
        lengths.extend(out.lengths.tolist())
        truncated.extend(out.truncated.tolist())
        for e, text, ok in zip(ex, out.texts, values.get("correct", torch.zeros(len(ex))).tolist()):
            if len(samples) < n_samples:
                samples.append({"question": e.question, "completion": text, "answer": e.answer, "correct": bool(ok)})
    n = len(examples)
    return {
        "accuracy": sum(per_fn["correct"]) / n if "correct" in per_fn else float("nan"),
        "rewards": {k: sum(v) / n for k, v in per_fn.items()},
        "completion_length": sum(lengths) / n,
        "truncated": sum(truncated) / n,
        "n": n,
        "samples": samples,
    }
