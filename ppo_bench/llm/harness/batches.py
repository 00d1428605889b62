"""Batches of [prompt | response] rows: the prompt left-padded, the response right-padded, and a mask of the
response tokens. Preference pairs, unpaired examples and sampled completions are scored through them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class ResponseBatch:
    """Rows of [left-padded prompt | right-padded response]; B pairs are 2B rows, the chosen first."""

    input_ids: torch.Tensor  # [N, P + R]
    attention_mask: torch.Tensor  # [N, P + R]
    response_mask: torch.Tensor  # [N, R], 1 on response tokens only

    def to(self, device) -> "ResponseBatch":
        return ResponseBatch(self.input_ids.to(device), self.attention_mask.to(device), self.response_mask.to(device))

    def select(self, rows) -> "ResponseBatch":
        return ResponseBatch(self.input_ids[rows], self.attention_mask[rows], self.response_mask[rows])


def collate_rows(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> ResponseBatch:
    """(prompt ids, response ids) rows in one batch: prompts left-padded, responses right-padded."""
    P = max(len(p) for p, _ in rows)
    R = max(len(y) for _, y in rows)
    ids = torch.full((len(rows), P + R), pad_id, dtype=torch.long)
    am = torch.zeros_like(ids)
    rm = torch.zeros(len(rows), R, dtype=torch.long)
    for i, (p, y) in enumerate(rows):
        ids[i, P - len(p) : P] = torch.tensor(p, dtype=torch.long)
        ids[i, P : P + len(y)] = torch.tensor(y, dtype=torch.long)
        am[i, P - len(p) : P + len(y)] = 1
        rm[i, : len(y)] = 1
    return ResponseBatch(ids, am, rm)


def collate(tokenized: Sequence[tuple[list[int], list[int], list[int]]], pad_id: int) -> ResponseBatch:
    """Chosen and rejected of every pair in one batch, so that one forward pass scores both."""
    return collate_rows([(p, c) for p, c, _ in tokenized] + [(p, r) for p, _, r in tokenized], pad_id)
