"""A reward model r(x, y) as the algorithms and the evaluation use one: a linear head on the last hidden state of a
sequence's final token, over a copy of the LM. ``algo=reward_model`` (``ppo_bench.llm.algorithms.reward_model``)
trains one and saves it as its run's ``model/`` folder with ``reward_head.pt``; PPO (``algo.reward_model``) and
``ppo-bench-llm-eval`` score completions with it."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness.batches import ResponseBatch
from ppo_bench.llm.harness.logprobs import sequence_scores
from ppo_bench.llm.harness.models import load_model

HEAD_FILE = "reward_head.pt"


def score_head(model) -> torch.nn.Linear:
    """r = w·h: a linear map of the last hidden state, initialised like Hugging Face's score heads (std 0.02)."""
    head = torch.nn.Linear(model.config.hidden_size, 1, bias=False)
    torch.nn.init.normal_(head.weight, std=0.02)
    return head.to(next(model.parameters()).device)


def response_scores(model, head, batch: ResponseBatch) -> torch.Tensor:
    """[N] r(x, y) of each row, read at its response's final token (its EOS, or its last token when cut off)."""
    P = batch.input_ids.shape[1] - batch.response_mask.shape[1]
    last = P + batch.response_mask.sum(1) - 1
    return sequence_scores(model, head, batch.input_ids, batch.attention_mask, last)


def pair_scores(model, head, batch: ResponseBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(r(x, y⁺), r(x, y⁻)) of a collated batch of B pairs, from one forward pass over its 2B rows."""
    scores = response_scores(model, head, batch)
    B = scores.shape[0] // 2
    return scores[:B], scores[B:]


@torch.no_grad()
def batch_scores(model, head, batch: ResponseBatch, micro_batch_size: int, autocast=nullcontext) -> torch.Tensor:
    """[N] r(x, y) of every row of a batch (sampled completions: ``Completions.as_batch()``), micro-batched, on the CPU."""
    out = []
    for chunk in torch.arange(batch.input_ids.shape[0]).split(micro_batch_size):
        with autocast():
            out.append(response_scores(model, head, batch.select(chunk)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def load_reward_model(path: str, tokenizer, device, dtype):
    """(frozen LM, frozen head) from a reward-model run's ``model/`` folder."""
    folder = Path(path).expanduser()
    if not (folder / HEAD_FILE).is_file():
        raise ConfigError(f"algo.reward_model={path}: no {HEAD_FILE} there (the model/ folder of an algo=reward_model run)")
    model = load_model(OmegaConf.create({"name": "hf", "path": str(folder), "freeze_embeddings": False}), tokenizer, device,
                       dtype, trainable=False)
    head = score_head(model)
    head.load_state_dict(torch.load(folder / HEAD_FILE, map_location=device, weights_only=True))
    head.requires_grad_(False)
    return model, head
