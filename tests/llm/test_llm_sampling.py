"""Generation, EOS masking and per-token log-probs on the tiny model."""

import torch

from ppo_bench.llm.harness.logprobs import sequence_logprob, token_logprobs
from ppo_bench.llm.harness.models import eos_token_ids, tiny_model
from ppo_bench.llm.harness.sampling import completion_mask, generate

EOS = 2


def test_tokens_after_the_first_eos_are_masked():
    ids = torch.tensor([
        [5, 6, EOS, 7, EOS],  # EOS in the middle: kept, what follows dropped
        [EOS, 5, 5, 5, 5],  # EOS first: only it counts
        [5, 6, 7, 8, 9],  # no EOS: truncated, all kept
        [5, 9, 6, 7, EOS],
    ])
    mask, truncated = completion_mask(ids, [EOS])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert truncated.tolist() == [False, False, True, False]
    mask2, _ = completion_mask(ids, [EOS, 9])  # any of several EOS ids ends a completion
    assert mask2[3].tolist() == [1, 1, 0, 0, 0] and mask2[2].tolist() == [1, 1, 1, 1, 1]


def test_generate_groups_and_masks(char_tok):
    torch.manual_seed(0)
    model = tiny_model(char_tok, seed=0)
    out = generate(model, char_tok, ["Q: 1+2\nA: ", "Q: 10+20\nA: "], n=3, max_new_tokens=6, eos_ids=eos_token_ids(model, char_tok))
    assert out.prompt_ids.shape[0] == out.completion_ids.shape[0] == 6
    assert torch.equal(out.prompt_ids[0], out.prompt_ids[2]) and not torch.equal(out.prompt_ids[2], out.prompt_ids[3])
    assert out.completion_ids.shape[1] <= 6 and len(out.texts) == 6
    for ids, m, text in zip(out.completion_ids, out.completion_mask, out.texts):
        kept = ids[: int(m.sum())].tolist()
        assert char_tok.decode(kept, skip_special_tokens=True) == text
        assert EOS not in kept[:-1]


def test_token_logprobs_match_a_full_forward_and_ignore_left_padding(char_tok):
    model = tiny_model(char_tok, seed=1).eval()
    prompt, completion = char_tok("Q: 12+3\nA: ").input_ids, char_tok("15").input_ids + [EOS]
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        lp, ent = token_logprobs(model, ids, torch.ones_like(ids), len(completion), with_entropy=True)
        full = torch.log_softmax(model(ids).logits[0, :-1], -1)
        manual = full[torch.arange(len(prompt) - 1, ids.shape[1] - 1), ids[0, len(prompt):]]
        assert torch.allclose(lp[0], manual, atol=1e-5)
        assert (ent > 0).all()
        # the same sequence left-padded by 4 pads inside a batch: same log-probs (positions follow the mask)
        pad = char_tok.pad_token_id
        padded = torch.tensor([[pad] * 4 + prompt + completion])
        am = torch.tensor([[0] * 4 + [1] * (len(prompt) + len(completion))])
        lp_pad, _ = token_logprobs(model, padded, am, len(completion))
        assert torch.allclose(lp_pad, lp, atol=1e-5)
        # temperature divides the logits
        lp_t, _ = token_logprobs(model, ids, torch.ones_like(ids), len(completion), temperature=2.0)
        assert not torch.allclose(lp_t, lp)
    assert sequence_logprob(lp, torch.tensor([[1, 1, 0]])).item() == lp[0, :2].sum().item()
