"""Sampling completions with the KV cache of Hugging Face ``generate``, and masking after the first EOS."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppo_bench.llm.harness.batches import ResponseBatch


@dataclass
class Completions:
    """A batch of prompts, each repeated ``n`` times consecutively (group i is rows i·n .. i·n+n−1)."""

    prompt_ids: torch.Tensor  # [N, P], left-padded
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, C]
    completion_mask: torch.Tensor  # [N, C], 1 up to and including the first EOS, 0 after it
    texts: list[str]  # decoded completions, EOS and what follows dropped
    truncated: torch.Tensor  # [N] bool: no EOS within the length budget

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        # completion positions are all attended, as in generate(); what follows an EOS is masked out of the loss
        return torch.cat([self.prompt_mask, torch.ones_like(self.completion_mask)], dim=1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(1)

    def as_batch(self) -> ResponseBatch:
        """The completions as a ``ResponseBatch`` (their response mask: up to and including the first EOS)."""
        return ResponseBatch(self.input_ids, self.attention_mask, self.completion_mask)


def completion_mask(completion_ids: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, truncated): keep tokens up to and including the first EOS; a completion without EOS keeps all."""
    is_eos = torch.isin(completion_ids, torch.tensor(eos_ids, device=completion_ids.device))
    n = completion_ids.shape[1]
    has_eos = is_eos.any(dim=1)
    first = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, n, dtype=torch.long))
    mask = torch.arange(n, device=completion_ids.device)[None, :] <= first[:, None]
    return mask.long(), ~has_eos


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    n: int = 1,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    greedy: bool = False,
    eos_ids: list[int] | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
) -> Completions:
    """n completions per prompt: ancestral sampling at ``temperature`` (by default without top-k/top-p, so the
    sampling distribution is the policy whose log-probs GRPO uses; ``top_k`` > 0 keeps the k likeliest tokens,
    ``top_p`` < 1 the smallest set whose probability reaches p, Holtzman et al. 2020), or greedy decoding."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    eos_ids = eos_ids or [tokenizer.eos_token_id]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    prompt_ids = enc.input_ids.repeat_interleave(n, dim=0).to(device)
    prompt_mask = enc.attention_mask.repeat_interleave(n, dim=0).to(device)
    gen = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_k=None if greedy else top_k,
        top_p=None if greedy else top_p,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    was_training = model.training
    model.eval()
    out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=gen)
    model.train(was_training)
    completion_ids = out[:, prompt_ids.shape[1]:]
    mask, truncated = completion_mask(completion_ids, eos_ids)
    texts = [tokenizer.decode(ids[: int(m.sum())].tolist(), skip_special_tokens=True) for ids, m in zip(completion_ids, mask)]
    return Completions(prompt_ids, prompt_mask, completion_ids, mask, texts, truncated)
