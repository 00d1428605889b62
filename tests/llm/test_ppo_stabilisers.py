"""PPO for LMs' stabilisers (docs/llm.md, "Stabilising PPO"), each against an independent reference: the running
score statistics against numpy over every score seen; the value-only warm-up against Adam's first step worked out by
hand on hidden states and returns recomputed here; the value head from the reward model against the reward model's own
scores; the adaptive β and the value head's learning rate against their formulas; the settings' one-line errors."""

import math

import numpy as np
import pytest
import torch

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.algorithms.ppo.loss import RunningMoments, normalised_scores
from ppo_bench.llm.harness.models import char_tokenizer, tiny_model
from ppo_bench.llm.harness.reward_models import HEAD_FILE
from ppo_bench.llm.launch import build_trainer, validate

TINY = ["model=tiny", "algo=ppo", "task.n_eval=4", "eval.every=0", "eval.before=false", "eval.batch_size=4",
        "eval.max_new_tokens=4", "algo.max_completion_length=4", "algo.prompts_per_step=8", "algo.minibatch_size=8",
        "algo.micro_batch_size=4", "save_model=false", "torch_threads=1", "checkpoint_every=100"]


def digit_fraction(prompt, completion, **_):
    return sum(ch.isdigit() for ch in completion) / max(len(completion), 1)


def recording(obj, name):
    """Wrap obj.name so that every call's result is appended to the returned list."""
    calls, original = [], getattr(obj, name)

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((args, out))
        return out

    setattr(obj, name, wrapped)
    return calls


# ---- running score statistics -------------------------------------------------------------------------------


def test_running_moments_equal_numpy_over_every_score_seen():
    g = np.random.default_rng(0)
    moments, seen = RunningMoments(), []
    for n in (1, 5, 16, 2, 9):
        x = g.normal(3.0, 2.0, n)
        seen.extend(x)
        moments.update(torch.tensor(x, dtype=torch.float32))
        assert moments.count == len(seen)
        assert moments.mean == pytest.approx(np.mean(seen), rel=1e-6)
        assert moments.std == pytest.approx(np.std(seen, ddof=1) if len(seen) > 1 else 1.0, rel=1e-6)
    state = moments.state_dict()
    assert RunningMoments(**state).std == moments.std


@pytest.mark.parametrize("how", ["running", "scale", "none"])
def test_normalised_scores_by_hand(how):
    moments = RunningMoments()
    first, second = torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 1.0])
    normalised_scores(first, moments, how)
    got = normalised_scores(second, moments, how)
    if how == "none":
        assert torch.equal(got, second) and moments.count == 0
        return
    seen = np.array([0, 1, 0, 0, 1, 1, 0, 1], dtype=float)  # the statistics include this rollout's scores
    mean, std = seen.mean(), seen.std(ddof=1)  # 0.5 and sqrt(2/7)
    assert std == pytest.approx(math.sqrt(2 / 7))
    want = (second.numpy() - (mean if how == "running" else 0.0)) / (std + 1e-8)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_the_trainer_normalises_by_every_score_it_has_seen(llm_cfg):
    run = build_trainer(llm_cfg(*TINY, "algo.steps=3", "algo.ppo_epochs=1", "algo.lr=1e-3", "algo.reward_norm=running"))
    run.algorithm.reward_fns = {"correct": digit_fraction}
    calls = recording(run.algorithm, "scores")
    run.train()
    raw = []
    for (_, (scores, _)), h in zip(calls, run.history):
        raw.extend(scores.tolist())
        assert h["objective/scores"] == pytest.approx(scores.mean().item())  # what is logged is the raw score
        assert h["objective/scores_running_mean"] == pytest.approx(np.mean(raw), abs=1e-7)
        assert h["objective/scores_running_std"] == pytest.approx(np.std(raw, ddof=1), rel=1e-5)
        want = (scores.double().numpy() - np.mean(raw)) / (np.std(raw, ddof=1) + 1e-8)
        assert h["objective/scores_normalised"] == pytest.approx(want.mean(), abs=1e-5)


# ---- value-only warm-up -------------------------------------------------------------------------------------


def completion_hidden(model, ids, am, C):
    """The last hidden state at each position that predicts a completion token, by a plain forward pass."""
    pos = (am.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=am, position_ids=pos, output_hidden_states=True)
    return out.hidden_states[-1][:, -C - 1:-1].double()


def test_value_warmup_moves_only_the_value_head_by_adams_first_step(llm_cfg):
    lr, vf_lr, lam = 1e-3, 2e-2, 0.95
    run = build_trainer(llm_cfg(*TINY, "algo.steps=1", "algo.ppo_epochs=1", f"algo.lr={lr}", f"algo.vf_lr={vf_lr}",
                                "algo.value_warmup_steps=1", "algo.whiten_advantages=false"))
    ppo = run.algorithm
    ppo.reward_fns = {"correct": digit_fraction}
    start = {k: v.clone() for k, v in run.model.state_dict().items()}
    passes, scored = recording(ppo, "old_pass"), recording(ppo, "scores")
    run.train()
    assert run.history[0]["policy/frozen"] == 1.0 and "policy/entropy_avg" not in run.history[0]
    assert run.history[0]["charts/learning_rate_value"] == vf_lr and run.history[0]["charts/learning_rate"] == lr
    for k, v in run.model.state_dict().items():  # the policy, its trunk included, did not move
        assert torch.equal(v, start[k]), k

    (ids, am, C), _ = passes[0]
    scores = scored[0][1][0].double()
    hidden = completion_hidden(run.model, ids, am, C)
    mask = torch.zeros(ids.shape[0], C, dtype=torch.float64)
    returns = torch.zeros_like(mask)
    eos = run.eos_ids
    for b in range(ids.shape[0]):  # the completion runs to its first EOS (included); the score sits on its last token
        comp = ids[b, -C:].tolist()
        n = next((i + 1 for i, t in enumerate(comp) if t in eos), C)
        mask[b, :n] = 1
        for t in range(n):  # the policy is the reference (k1 = 0) and V = 0: R_t = (γλ)^(n−1−t) · score
            returns[b, t] = lam ** (n - 1 - t) * scores[b]
    n_tokens = mask.sum()
    # the loss c1 · ½ Σ_t (w·h_t + b − R_t)² / n_tokens at w = 0, b = 0 has gradient −c1 Σ_t R_t (h_t, 1) / n_tokens;
    # Adam's first step moves each parameter by −lr · g / (|g| + eps)
    c1 = run.cfg.algo.vf_coef
    g_w = -c1 * (mask[..., None] * returns[..., None] * hidden).sum((0, 1)) / n_tokens
    g_b = -c1 * (mask * returns).sum() / n_tokens
    norm = math.sqrt((g_w ** 2).sum().item() + g_b.item() ** 2)
    clip = min(1.0, run.cfg.algo.max_grad_norm / (norm + 1e-6))  # clip_grad_norm_ first: Adam's step is scale-free but for eps
    want_w = -vf_lr * (g_w * clip) / ((g_w * clip).abs() + 1e-8)
    want_b = -vf_lr * (g_b * clip) / ((g_b * clip).abs() + 1e-8)
    torch.testing.assert_close(ppo.value_head.weight[0].double(), want_w, rtol=1e-4, atol=1e-7)
    assert ppo.value_head.bias.item() == pytest.approx(want_b.item(), rel=1e-4)
    assert run.summary()["value_warmup_steps"] == 1


def test_after_the_warmup_the_policy_moves(llm_cfg):
    run = build_trainer(llm_cfg(*TINY, "algo.steps=3", "algo.ppo_epochs=1", "algo.lr=1e-3", "algo.value_warmup_steps=2"))
    run.algorithm.reward_fns = {"correct": digit_fraction}
    start = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.a.steps = 2
    run.train()
    assert all(torch.equal(v, start[k]) for k, v in run.model.state_dict().items())
    run.a.steps = 3
    run.train()
    assert [h["policy/frozen"] for h in run.history] == [1.0, 1.0, 0.0]
    assert any(not torch.equal(v, start[k]) for k, v in run.model.state_dict().items())


def test_a_killed_run_with_every_stabiliser_resumes_exactly(llm_cfg):
    args = [*TINY, "algo.steps=3", "algo.ppo_epochs=1", "algo.lr=1e-3", "algo.vf_lr=1e-2", "algo.value_warmup_steps=1",
            "algo.reward_norm=running", "algo.adaptive_kl=true", "algo.kl_horizon=10"]
    straight = build_trainer(llm_cfg(*args, "run_name=a"))
    straight.train()
    first = build_trainer(llm_cfg(*args, "run_name=b", "checkpoint_every=1"))
    first.a.steps = 2
    first.train()
    (first.run_dir / "status.json").unlink()
    second = build_trainer(llm_cfg(*args, "run_name=b"))
    second.train()
    assert [h["objective/scores_normalised"] for h in second.history] == [h["objective/scores_normalised"] for h in straight.history]
    assert second.algorithm.score_moments.state_dict() == straight.algorithm.score_moments.state_dict()
    for p, q in zip([*straight.model.parameters(), *straight.algorithm.value_head.parameters()],
                    [*second.model.parameters(), *second.algorithm.value_head.parameters()]):
        assert torch.equal(p, q)


# ---- the adaptive KL controller in the trainer ------------------------------------------------------------------


def test_the_trainer_adapts_beta_by_ziegler_et_al_s_rule(llm_cfg):
    target, horizon, n = 0.05, 20, 8
    run = build_trainer(llm_cfg(*TINY, "algo.steps=4", "algo.ppo_epochs=2", "algo.lr=3e-3", "algo.adaptive_kl=true",
                                f"algo.kl_target={target}", f"algo.kl_horizon={horizon}", "algo.kl_coef=0.1"))
    run.algorithm.reward_fns = {"correct": digit_fraction}
    run.train()
    beta = 0.1
    for h in run.history:  # β ← β (1 + clip(KL/KL_target − 1, −0.2, 0.2) · n/horizon), KL the rollout's mean per sequence
        assert h["objective/kl_coef"] == pytest.approx(beta)
        beta *= 1 + min(max(h["objective/kl"] / target - 1, -0.2), 0.2) * n / horizon
    assert run.algorithm.kl_coef == pytest.approx(beta)
    assert beta != 0.1


# ---- the value head from the reward model ------------------------------------------------------------------------


def reward_model_folder(path, seed=0):
    """A reward model whose LM is the tiny policy's starting point (same seed) and whose head is random."""
    tok = char_tokenizer()
    model = tiny_model(tok, seed=seed)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    head = torch.nn.Linear(model.config.hidden_size, 1, bias=False)
    torch.nn.init.normal_(head.weight, std=0.5, generator=torch.Generator().manual_seed(7))
    torch.save(head.state_dict(), path / HEAD_FILE)
    return head


def test_the_value_head_starts_as_the_reward_models_head(llm_cfg, tmp_path):
    head = reward_model_folder(tmp_path / "rm")
    run = build_trainer(llm_cfg(*TINY, "algo.steps=1", "algo.lr=1e-3", f"algo.reward_model={tmp_path / 'rm'}",
                                "algo.value_init=reward_model"))
    ppo = run.algorithm
    assert torch.equal(ppo.value_head.weight, head.weight) and ppo.value_head.bias.item() == 0.0
    # V_old(s_t) is the reward model reading the state s_t (the prompt and o_<t): its head on its LM's last hidden
    # state there, computed by a plain forward pass of the reward model's saved LM (here the policy's starting point)
    passes = recording(ppo, "old_pass")
    run.train()
    (ids, am, C), (_, old_values, _, _) = passes[0]
    from transformers import AutoModelForCausalLM

    rm_lm = AutoModelForCausalLM.from_pretrained(tmp_path / "rm", dtype=torch.float32)
    by_hand = (completion_hidden(rm_lm, ids, am, C) @ head.weight[0].double()).float()
    torch.testing.assert_close(old_values, by_hand, rtol=1e-4, atol=1e-5)

    zeros = build_trainer(llm_cfg(*TINY, "algo.steps=1", f"algo.reward_model={tmp_path / 'rm'}", "run_name=z"))
    assert torch.count_nonzero(zeros.algorithm.value_head.weight) == 0


# ---- bad settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("algo.value_warmup_steps=-1", "algo.value_warmup_steps=-1 must be an integer >= 0"),
    ("algo.vf_lr=0", "algo.vf_lr=0.0 must be > 0"),
    ("algo.reward_norm=whiten", "algo.reward_norm='whiten' is not one of: none, running, scale"),
    ("algo.value_init=random", "algo.value_init='random' is not one of: zeros, reward_model"),
    ("algo.value_init=reward_model", "algo.value_init=reward_model needs algo.reward_model"),
])
def test_bad_stabiliser_settings_are_one_line(llm_cfg, override, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate(llm_cfg(*TINY, override))
    assert "\n" not in str(e.value)
