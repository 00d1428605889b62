"""DPO (issue 6): each variant against hand-computed numbers, the concatenated forward, the masks, the data,
bad input, and a tiny model whose preference accuracy on its training pairs rises."""

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.common.errors import ConfigError
from scripts.fault_drill import Payload
from ppo_bench.llm.algorithms.dpo import loss as dpo
from ppo_bench.llm.launch import validate
from ppo_bench.llm.algorithms.dpo.loss import DPO_LOSSES, LossOptions
from ppo_bench.llm.algorithms.dpo.trainer import DPOTrainer, concatenated_logps
from ppo_bench.llm.launch import build_trainer
from ppo_bench.llm.harness.models import tiny_model
from ppo_bench.llm.harness.batches import collate
from ppo_bench.llm.harness.preferences import PreferencePair, pairs_from_task, read_jsonl, tokenize_pairs, write_jsonl
from ppo_bench.llm.harness.tasks import Example

torch.set_num_threads(1)


def softplus(x):  # −log σ(x) = log(1 + e^(−x))
    return math.log1p(math.exp(-x))


# two pairs: (log π(y⁺), log π(y⁻), log π_ref(y⁺), log π_ref(y⁻)); pair 2 has a negative chosen reward
PC, PR, RC, RR = (torch.tensor(v) for v in ([-1.0, -3.0], [-3.0, -4.0], [-2.0, -2.0], [-2.5, -2.5]))
OPT = LossOptions(beta=0.5, label_smoothing=0.1, beta_chosen=0.6, beta_rejected=0.2, dpop_lambda=2.0, sft_alpha=0.2)
# h = (π−ref)(y⁺) − (π−ref)(y⁻): pair 1: 1 − (−0.5) = 1.5; pair 2: −1 − (−1.5) = 0.5
EXPECTED = {
    "sigmoid": ([softplus(0.75), softplus(0.25)], [0.5, -0.5], [-0.25, -0.75]),
    "ipo": ([(1.5 - 1.0) ** 2, (0.5 - 1.0) ** 2], [0.5, -0.5], [-0.25, -0.75]),
    "cdpo": ([0.9 * softplus(0.75) + 0.1 * softplus(-0.75), 0.9 * softplus(0.25) + 0.1 * softplus(-0.25)], [0.5, -0.5], [-0.25, -0.75]),
    # against a uniform reference: h = log π(y⁺) − log π(y⁻) = 2 and 1; rewards β log π
    "reference_free": ([softplus(1.0), softplus(0.5)], [-0.5, -1.5], [-1.5, -2.0]),
    # β⁺ (π−ref)(y⁺) − β⁻ (π−ref)(y⁻): 0.6 + 0.1 = 0.7 and −0.6 + 0.3 = −0.3
    "asymmetric": ([softplus(0.7), softplus(-0.3)], [0.6, -0.6], [-0.1, -0.3]),
    # + λ max(0, −r̂(y⁺)): 0 for pair 1, 2 · 0.5 for pair 2
    "dpop": ([softplus(0.75), softplus(0.25) + 1.0], [0.5, -0.5], [-0.25, -0.75]),
    # + α (−log π(y⁺)): 0.2 · 1 and 0.2 · 3
    "dpo_sft": ([softplus(0.75) + 0.2, softplus(0.25) + 0.6], [0.5, -0.5], [-0.25, -0.75]),
}


def test_every_registered_loss_is_checked():
    assert set(DPO_LOSSES) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_variant_loss_and_rewards_match_hand_computed_numbers(name):
    losses, chosen, rejected = DPO_LOSSES[name](PC, PR, RC, RR, OPT)
    want_loss, want_c, want_r = (torch.tensor(v) for v in EXPECTED[name])
    torch.testing.assert_close(losses, want_loss)
    torch.testing.assert_close(chosen, want_c)
    torch.testing.assert_close(rejected, want_r)
    assert not chosen.requires_grad and not rejected.requires_grad


def test_label_smoothing_zero_is_dpo_and_reference_free_ignores_the_reference():
    zero_ls = LossOptions(beta=0.5, label_smoothing=0.0)
    torch.testing.assert_close(dpo.cdpo(PC, PR, RC, RR, zero_ls)[0], dpo.sigmoid(PC, PR, RC, RR, zero_ls)[0])
    a = dpo.reference_free(PC, PR, RC, RR, OPT)
    b = dpo.reference_free(PC, PR, RC + 7.0, RR - 3.0, OPT)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_gradients_flow_through_the_policy_logps():
    pc, pr = PC.clone().requires_grad_(), PR.clone().requires_grad_()
    losses, *_ = dpo.dpo_sft(pc, pr, RC, RR, OPT)
    losses.sum().backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # raise log π(y⁺), lower log π(y⁻)


# ---- the forward pass ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(char_tok):
    return tiny_model(char_tok, hidden=32, layers=2, heads=2, context=128, seed=0).eval()


PAIRS = [PreferencePair("Q: 1+1?\nA: ", "2", "11"), PreferencePair("Q: What is 12 + 30?\nA: ", "42", "forty-two, I think")]


def test_concatenated_forward_equals_separate_forwards(tiny, char_tok):
    tok = tokenize_pairs(char_tok, PAIRS, char_tok.eos_token_id)
    b = collate(tok, char_tok.pad_token_id)
    both = concatenated_logps(tiny, b.input_ids, b.attention_mask, b.response_mask)
    for half, k in ((both[:2], 1), (both[2:], 2)):  # chosen rows, then rejected rows
        rows = [(p, y, y) for p, *ys in tok for y in [ys[k - 1]]]
        s = collate(rows, char_tok.pad_token_id)
        alone = concatenated_logps(tiny, s.input_ids, s.attention_mask, s.response_mask)[:2]
        torch.testing.assert_close(half, alone, atol=1e-5, rtol=1e-5)


def test_prompt_tokens_and_padding_are_excluded(tiny, char_tok):
    tok = tokenize_pairs(char_tok, PAIRS, char_tok.eos_token_id)
    b = collate(tok, char_tok.pad_token_id)
    got = concatenated_logps(tiny, b.input_ids, b.attention_mask, b.response_mask)
    # by hand, one unpadded sequence at a time: Σ over the response tokens (and its EOS) of log softmax
    for row, (prompt, response) in enumerate([(p, c) for p, c, _ in tok] + [(p, r) for p, _, r in tok]):
        ids = torch.tensor([prompt + response])
        logp = torch.log_softmax(tiny(input_ids=ids).logits[0].float(), -1)
        want = sum(logp[len(prompt) + t - 1, y].item() for t, y in enumerate(response))
        assert got[row].item() == pytest.approx(want, abs=1e-4)
    # whatever token sits in the padding, the result is the same
    junk = b.input_ids.clone()
    junk[b.attention_mask == 0] = 7
    torch.testing.assert_close(concatenated_logps(tiny, junk, b.attention_mask, b.response_mask), got)
    assert b.response_mask.sum().item() == sum(len(c) + len(r) for _, c, r in tok)


# ---- preference data -----------------------------------------------------------------------------


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "a", "chosen": "b"', "not valid JSON"),
    ('["a", "b", "c"]', "a record must be a JSON object"),
    ('{"prompt": "a", "chosen": "b"}', "missing field 'rejected'"),
    ('{"prompt": "a", "chosen": "", "rejected": "c"}', "field 'chosen' must be a non-empty string"),
    ('{"prompt": [{"role": "user", "content": "a"}], "chosen": "b", "rejected": "c"}', "field 'prompt' must be a non-empty string"),
])
def test_malformed_jsonl_is_rejected_with_file_and_line(tmp_path, line, message):
    f = tmp_path / "prefs.jsonl"
    f.write_text('{"prompt": "x", "chosen": "y", "rejected": "z"}\n\n' + line + "\n")
    with pytest.raises(ConfigError, match=rf"{f}:3: {message}"):
        read_jsonl(f)


def test_jsonl_round_trip(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", PAIRS)
    assert read_jsonl(tmp_path / "p.jsonl") == PAIRS


def test_task_pairs_on_policy_then_fallback(monkeypatch):
    samples = {"p1": ["5", "7", "5", "x"], "p2": ["1", "2"], "p3": ["3", "3"]}

    def fake_generate(model, tokenizer, prompts, n, **kw):
        return SimpleNamespace(texts=[t for p in prompts for t in samples[p][:n]])

    monkeypatch.setattr("ppo_bench.llm.harness.preferences.generate", fake_generate)
    examples = [Example("q1", "5"), Example("q2", "9"), Example("q3", "3")]
    correct = lambda prompt, completion, answer, **_: float(completion == answer)  # noqa: E731
    pairs, stats = pairs_from_task(None, None, examples, ["p1", "p2", "p3"], correct, num_samples=2, pairs_per_prompt=2,
                                   answer_template="The answer is {answer}.")
    # p1 (first 2 samples): "5" correct, "7" wrong → on-policy; p2: nothing correct → the answer vs its own wrong ones; p3: all correct → none
    assert pairs[0] == PreferencePair("p1", "5", "7", "on_policy")
    assert {(p.chosen, p.rejected, p.source) for p in pairs[1:]} == {("The answer is 9.", "1", "fallback"), ("The answer is 9.", "2", "fallback")}
    assert stats == {"pairs": 3, "on_policy": 1, "fallback": 2, "sample_accuracy": 3 / 6}


# ---- configs and the trainer ---------------------------------------------------------------------

TINY = ["model=tiny", "algo=dpo", "model.tiny_hidden=32", "model.tiny_heads=2", "task.n_eval=4", "eval.every=0",
        "eval.batch_size=4", "eval.max_new_tokens=4", "algo.max_completion_length=4", "save_model=false", "torch_threads=1"]


def test_dpo_configs_compose_and_validate(llm_cfg):
    cfg = llm_cfg("algo=dpo")
    validate(cfg)
    assert cfg.algo.loss == "sigmoid" and cfg.algo.beta == 0.1
    assert cfg.run_name == "addition-smollm2/dpo_sigmoid_beta0.1_lr1e-06/seed0"
    exp = llm_cfg("+experiment=dpo_addition", "algo.loss=dpop")
    validate(exp)
    assert exp.run_name == "dpo_addition/dpop/seed0" and exp.model.name == "smollm2"


@pytest.mark.parametrize("override, message", [
    ("algo.beta=0", r"algo.beta=0.0 must be > 0"),
    ("algo.beta=-0.1", r"algo.beta=-0.1 must be > 0"),
    ("algo.loss=kto", r"algo.loss='kto' is not one of: sigmoid, ipo, cdpo, reference_free, asymmetric, dpop, dpo_sft"),
    ("algo.label_smoothing=0.5", r"algo.label_smoothing=0.5 must lie in \[0, 0.5\)"),
    ("algo.beta_rejected=0", r"algo.beta_rejected=0.0 must be > 0"),
    ("algo.num_samples=1", r"algo.num_samples=1 must be an integer >= 2"),
])
def test_bad_dpo_options_are_one_clear_line(llm_cfg, override, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate(llm_cfg("algo=dpo", override))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("args, message", [
    (["algo=dpo", "algo.beta=0"], "error: algo.beta=0.0 must be > 0"),
    (["algo=dpo", "model=tiny", "algo.data_file=BAD"], "BAD.jsonl:2: missing field 'rejected'"),
])
def test_cli_reports_bad_dpo_input_in_one_line(tmp_path, args, message):
    bad = tmp_path / "BAD.jsonl"
    bad.write_text('{"prompt": "x", "chosen": "y", "rejected": "z"}\n{"prompt": "x", "chosen": "y"}\n')
    args = [a.replace("BAD", str(tmp_path / "BAD.jsonl")) if a.endswith("BAD") else a for a in args]
    r = subprocess.run([sys.executable, "-m", "ppo_bench.llm.cli", f"run_root={tmp_path}", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr



def test_variants_script_rejects_unknown_losses_and_keeps_overrides_out_of_them(tmp_path):
    script = [sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / "llm_dpo_variants.py"), "--from-runs", "--out", str(tmp_path)]
    r = subprocess.run([*script, "--losses", "ipo", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "got ['nope']" in r.stderr, r.stderr
    # an override after --losses is an override, not a loss: the run folder it names has no summary yet
    r = subprocess.run([*script, "--losses", "ipo", f"run_root={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and str(tmp_path) in r.stderr and "no summary.json" in r.stderr, r.stderr

def test_reference_free_makes_no_reference_pass(llm_cfg, monkeypatch):
    trainer = build_trainer(llm_cfg(*TINY, "algo.loss=reference_free", "algo.num_prompts=2", "algo.num_samples=2"))
    monkeypatch.setattr(DPOTrainer, "sequence_logps", lambda self: pytest.fail("a reference pass was made"))
    dpo = trainer.algorithm
    dpo.prepare(resuming=False)
    assert dpo.ref_chosen.abs().sum() == 0 and dpo.ref_rejected.abs().sum() == 0


def test_tiny_model_preference_accuracy_rises_under_dpo(llm_cfg, tmp_path, capsys):
    # a consistent preference a random model does not have: digits over letters, after a task prompt
    pairs = [PreferencePair(f"Q: What is {a} + {a + 3}?\nA: ", str(2 * a + 3), "abc"[a % 3] * (1 + a % 2)) for a in range(12)]
    write_jsonl(tmp_path / "prefs.jsonl", pairs)
    cfg = llm_cfg(*TINY, f"algo.data_file={tmp_path}/prefs.jsonl", "algo.steps=12", "algo.batch_size=6",
                  "algo.micro_batch_size=3", "algo.lr=3e-3", "algo.beta=0.5")
    trainer = build_trainer(cfg)
    summary = trainer.train(progress=True)
    assert "acc=" in capsys.readouterr().err  # the progress bar shows DPO's own figures
    before, after = summary["train_pairs_before"], summary["train_pairs_after"]
    assert before["rewards/accuracies"] == 0.0 and before["rewards/margins"] == 0.0  # the policy is the reference
    assert after["rewards/accuracies"] >= 0.9 and after["rewards/margins"] > 0.5, after
    assert after["logps/chosen_change"] - after["logps/rejected_change"] > 1.0
    ea = EventAccumulator(str(trainer.run_dir))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    for t in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
              "losses/dpo", "eval/accuracy", "train_pairs/rewards/accuracies", "train_pairs/logps/chosen"):
        assert t in tags, t
    assert (trainer.run_dir / "pairs.jsonl").is_file() and (trainer.run_dir / "preferences.pt").is_file()
    assert json.loads((trainer.run_dir / "status.json").read_text())["status"] == "finished"


def test_task_pairs_run_end_to_end_and_resume_from_the_cache(llm_cfg):
    args = [*TINY, "algo.num_prompts=4", "algo.num_samples=2", "algo.steps=2", "algo.batch_size=2", "algo.lr=1e-3"]
    first = build_trainer(llm_cfg(*args, "checkpoint_every=1"))
    first.a.steps = 1  # stopped after its first checkpoint, as if killed
    first.train()
    (first.run_dir / "status.json").unlink()
    second = build_trainer(llm_cfg(*args))
    second.train()
    assert second.step == 2 and second.algorithm.pairs == first.algorithm.pairs
    torch.testing.assert_close(second.algorithm.ref_chosen, first.algorithm.ref_chosen)
    assert {p.source for p in second.algorithm.pairs} <= {"on_policy", "fallback"}



def test_the_preference_cache_is_read_as_data(llm_cfg, tmp_path):
    args = [*TINY, "algo.num_prompts=4", "algo.num_samples=2", "algo.steps=2", "algo.batch_size=2"]
    first = build_trainer(llm_cfg(*args, "checkpoint_every=1"))
    first.a.steps = 1
    first.train()
    (first.run_dir / "status.json").unlink()
    cache = first.run_dir / "preferences.pt"
    marker = tmp_path / "pwned"
    torch.save({"pairs": [], "x": Payload(marker)}, cache)
    with pytest.raises(ConfigError, match=f"the preference cache {cache} is unreadable .*holds objects other than") as e:
        build_trainer(llm_cfg(*args)).train()
    assert "\n" not in str(e.value) and not marker.exists()
