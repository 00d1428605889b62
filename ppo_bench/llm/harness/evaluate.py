"""Held-out evaluation (docs/llm.md, "Evaluation and logs", "Evaluating a trained run"): greedy decoding, batched,
scored by the task's exact-match reward; and the figures ``ppo-bench-llm-eval`` adds for a trained run: the win rate
against the reference's answers, the perplexity of given responses, how an implied reward ranks preference pairs,
the KL to the reference along sampled completions."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Mapping, Sequence

import torch

from ppo_bench.llm.harness.logprobs import completion_forward
from ppo_bench.llm.harness.rewards import weighted_rewards
from ppo_bench.llm.harness.sampling import generate
from ppo_bench.llm.harness.tasks import Example


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
    keep: bool = False,
) -> dict:
    """Accuracy (mean of the ``correct`` reward), every reward's mean, completion length, truncation,
    and the first ``n_samples`` (prompt, completion, answer, correct) for a human to read; with ``keep``, also
    per problem its ``correct`` reward, its completion's ``texts`` and ``completion_ids`` (up to and including
    the first EOS)."""
    names = list(reward_fns)
    per_fn: dict[str, list[float]] = {k: [] for k in names}
    lengths, truncated, samples, texts, completion_ids = [], [], [], [], []
    for start in range(0, len(examples), batch_size):
        ex = examples[start : start + batch_size]
        pr = list(prompts[start : start + batch_size])
        out = generate(model, tokenizer, pr, n=1, max_new_tokens=max_new_tokens, greedy=True, eos_ids=eos_ids)
        _, values = weighted_rewards(reward_fns, {k: 1.0 for k in names}, pr, out.texts, [e.reward_fields() for e in ex])
        for k in names:
            per_fn[k].extend(values[k].tolist())
        lengths.extend(out.lengths.tolist())
        truncated.extend(out.truncated.tolist())
        if keep:
            texts.extend(out.texts)
            completion_ids.extend(ids[: int(m.sum())].tolist() for ids, m in zip(out.completion_ids, out.completion_mask))
        for e, text, ok in zip(ex, out.texts, values.get("correct", torch.zeros(len(ex))).tolist()):
            if len(samples) < n_samples:
                samples.append({"question": e.question, "completion": text, "answer": e.answer, "correct": bool(ok)})
    n = len(examples)
    res = {
        "accuracy": sum(per_fn["correct"]) / n if "correct" in per_fn else float("nan"),
        "rewards": {k: sum(v) / n for k, v in per_fn.items()},
        "completion_length": sum(lengths) / n,
        "truncated": sum(truncated) / n,
        "n": n,
        "samples": samples,
    }
    if keep:
        res.update({"correct": per_fn.get("correct"), "texts": texts, "completion_ids": completion_ids})
    return res


def win_rate(policy_correct: Sequence[float], reference_correct: Sequence[float]) -> dict:
    """Per held-out problem, the policy's greedy answer against the reference's: a win when only the policy's is
    right, a loss when only the reference's is, a tie otherwise; win rate = (wins + ties / 2) / n (ties split, as
    pairwise judges count them)."""
    if len(policy_correct) != len(reference_correct):
        raise ValueError(f"{len(policy_correct)} policy answers against {len(reference_correct)} reference answers")
    wins = sum(p > 0 and r <= 0 for p, r in zip(policy_correct, reference_correct))
    losses = sum(p <= 0 and r > 0 for p, r in zip(policy_correct, reference_correct))
    n = len(policy_correct)
    ties = n - wins - losses
    return {"wins": wins, "ties": ties, "losses": losses, "win_rate": (wins + ties / 2) / n if n else float("nan")}


def perplexity(logps: torch.Tensor, n_tokens: Sequence[int]) -> float:
    """exp(−Σ log π / Σ tokens): the per-token perplexity of a set of responses from their summed log-probs."""
    return math.exp(-float(logps.sum()) / max(sum(n_tokens), 1))


@torch.no_grad()
def kl_to_reference(policy, reference, comp, micro_batch_size: int = 8, autocast=nullcontext) -> tuple[torch.Tensor, torch.Tensor]:
    """Per completion sampled from the policy, [N] each, on the CPU: the exact sequence KL
    Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)) (next-token distributions over the whole vocabulary, summed over the completion's
    tokens up to its first EOS), and the k1 estimate Σ_t log π(o_t|s_t) − log π_ref(o_t|s_t) of the same quantity."""
    ids, am, mask = comp.input_ids, comp.attention_mask, comp.completion_mask.float()
    C = mask.shape[1]
    exact, k1 = [], []
    for chunk in torch.arange(ids.shape[0], device=ids.device).split(micro_batch_size):
        with autocast():
            logits_p, _ = completion_forward(policy, ids[chunk], am[chunk], C)
            logits_r, _ = completion_forward(reference, ids[chunk], am[chunk], C)
        lp, lr = torch.log_softmax(logits_p.float(), -1), torch.log_softmax(logits_r.float(), -1)
        per_token = (lp.exp() * (lp - lr)).sum(-1)
        target = ids[chunk, -C:].unsqueeze(-1)
        sampled = (lp.gather(-1, target) - lr.gather(-1, target)).squeeze(-1)
        exact.append((per_token * mask[chunk]).sum(1).cpu())
        k1.append((sampled * mask[chunk]).sum(1).cpu())
    return torch.cat(exact), torch.cat(k1)


def preference_figures(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
                       reference_rejected: torch.Tensor, reference_free: bool = False) -> dict:
    """How the implied reward ranks preference pairs, from summed log-probs [B] each: ``accuracy`` the share with
    r(y⁺) > r(y⁻), r = log π − log π_ref (DPO's β r for any β > 0 ranks alike; r = log π when ``reference_free``),
    ``margin`` the mean r(y⁺) − r(y⁻) in nats, and the mean changes log π − log π_ref of y⁺ and y⁻."""
    chosen_change, rejected_change = policy_chosen - reference_chosen, policy_rejected - reference_rejected
    chosen, rejected = (policy_chosen, policy_rejected) if reference_free else (chosen_change, rejected_change)
    return {"accuracy": (chosen > rejected).float().mean().item(), "margin": (chosen - rejected).mean().item(),
            "chosen_change": chosen_change.mean().item(), "rejected_change": rejected_change.mean().item()}
