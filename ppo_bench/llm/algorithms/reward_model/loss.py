"""The reward model's loss: Bradley–Terry on preference pairs, stage 2 of RLHF (Ziegler et al. 2019; Ouyang et al. 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    # Bradley & Terry 1952; Ouyang et al. 2022 eq. 1: −log σ(r(x, y⁺) − r(x, y⁻)) per pair
    return -F.logsigmoid(chosen - rejected)
