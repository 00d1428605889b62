"""Per-token log-probabilities of completions under a causal LM (shared by GRPO and DPO)."""

from __future__ import annotations

import torch


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(o_t | q, o_<t) for the last ``n_completion`` tokens of each row, [N, n_completion].

    Logits are computed only where a completion token is predicted (``logits_to_keep``), divided by
    the sampling temperature so that the ratio compares the distributions the tokens came from.
    Position ids follow the left padding exactly as ``generate`` does. The entropy of the same
    distributions is returned (without gradient) when asked for.
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :].float() / temperature  # position t predicts token t+1
    targets = input_ids[:, -n_completion:]
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lp = torch.log_softmax(logits.detach(), dim=-1)
            entropy = -(lp.exp() * lp).sum(-1)
    return logp, entropy


def sequence_logprob(token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over the response tokens only."""
    return (token_logp * mask).sum(-1)
