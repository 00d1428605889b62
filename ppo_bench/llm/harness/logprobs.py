"""Per-token log-probabilities of completions under a causal LM, and the scalar heads read from its
last hidden states: PPO's value per response token, the reward model's score per sequence."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ppo_bench.llm.harness.batches import collate_rows


def completion_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int,
                       with_hidden: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits predicting each of the last ``n_completion`` tokens [N, n, V], and the last hidden
    states at the same positions [N, n, H] when asked for).

    Logits are computed only where a completion token is predicted (``logits_to_keep``). Position ids
    follow the left padding exactly as ``generate`` does. The hidden state at the position that
    predicts token t is the state s_t in which o_t is chosen: where PPO's value head reads V(s_t).
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
        use_cache=False,
        output_hidden_states=with_hidden,
    )
    hidden = out.hidden_states[-1][:, -(n_completion + 1):-1, :] if with_hidden else None
    return out.logits[:, :-1, :], hidden  # position t predicts token t+1


def logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                         with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(target) per position, the logits divided by the sampling temperature so that the ratio
    compares the distributions the tokens came from; the entropy (no gradient) when asked for."""
    logits = logits.float() / temperature
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lp = torch.log_softmax(logits.detach(), dim=-1)
            entropy = -(lp.exp() * lp).sum(-1)
    return logp, entropy


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(o_t | q, o_<t) for the last ``n_completion`` tokens of each row, [N, n_completion]."""
    logits, _ = completion_forward(model, input_ids, attention_mask, n_completion)
    return logprobs_from_logits(logits, input_ids[:, -n_completion:], temperature, with_entropy)


def token_logprobs_and_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int,
                              temperature: float = 1.0, with_entropy: bool = False):
    """(log π(o_t), the last hidden state s_t [N, n, H] in float32, entropy) per completion token, one forward pass."""
    logits, hidden = completion_forward(model, input_ids, attention_mask, n_completion, with_hidden=True)
    logp, entropy = logprobs_from_logits(logits, input_ids[:, -n_completion:], temperature, with_entropy)
    return logp, hidden.float(), entropy


def token_logprobs_and_values(model, value_head: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                              n_completion: int, temperature: float = 1.0, with_entropy: bool = False):
    """(log π(o_t), V(s_t), entropy) per completion token from one forward pass of the shared trunk."""
    logp, hidden, entropy = token_logprobs_and_hidden(model, input_ids, attention_mask, n_completion, temperature, with_entropy)
    return logp, value_head(hidden).squeeze(-1), entropy


def sequence_scores(model, head: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    last: torch.Tensor) -> torch.Tensor:
    """[N] scalar head on the last hidden state at position ``last`` of each row (its final token)."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=1,
                use_cache=False, output_hidden_states=True)
    hidden = out.hidden_states[-1][torch.arange(input_ids.shape[0], device=input_ids.device), last]
    return head(hidden.float()).squeeze(-1)


def sequence_logprob(token_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over the response tokens only."""
    return (token_logp * mask).sum(-1)


@torch.no_grad()
def response_logps(model, rows, pad_id: int, micro_batch_size: int = 8, autocast=nullcontext) -> torch.Tensor:
    """log π(y|x) summed over the response tokens of each (prompt ids, response ids) row, [N] on the CPU, no
    gradient; ``autocast`` makes the context each forward pass runs in (``LMRun.autocast``)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out = []
    for start in range(0, len(rows), micro_batch_size):
        b = collate_rows(rows[start:start + micro_batch_size], pad_id).to(device)
        with autocast():
            token_logp, _ = token_logprobs(model, b.input_ids, b.attention_mask, b.response_mask.shape[1])
        out.append(sequence_logprob(token_logp.float(), b.response_mask).cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0)
