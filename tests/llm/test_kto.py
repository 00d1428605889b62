"""KTO: the loss and its reference point by hand, the mismatched pairs, the unpaired data, bad input, and a tiny
model that learns a planted preference from unpaired examples."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.launch import validate
from ppo_bench.llm.algorithms.kto.loss import kto_loss, kto_reference_point
from ppo_bench.llm.algorithms.kto.trainer import mismatched_partners
from ppo_bench.llm.harness.preferences import PreferencePair, UnpairedExample, epoch_batch, unpair, write_jsonl
from ppo_bench.llm.launch import build_trainer

torch.set_num_threads(1)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_reference_point_is_the_clamped_mean_log_ratio_without_gradient():
    policy = torch.tensor([-1.0, -3.5, -2.0], requires_grad=True)
    reference = torch.tensor([-3.0, -4.0, -1.0])
    z0 = kto_reference_point(policy, reference)  # log-ratios 2, 0.5, −1: mean 0.5
    assert z0.item() == pytest.approx(0.5)
    assert not z0.requires_grad
    # a negative mean log-ratio is clamped at 0 (KL is never negative)
    assert kto_reference_point(torch.tensor([-3.0, -2.0]), torch.tensor([-1.0, -2.5])).item() == 0.0


def test_kto_loss_and_rewards_by_hand():
    policy = torch.tensor([-1.0, -3.0, -2.0, -5.0])
    reference = torch.tensor([-2.0, -2.0, -2.5, -4.0])  # r = 1, −1, 0.5, −1
    desirable = torch.tensor([True, False, True, False])
    z0, beta, lam_d, lam_u = torch.tensor(0.3), 0.5, 1.0, 2.0
    losses, rewards = kto_loss(policy, reference, desirable, z0, beta, lam_d, lam_u)
    want = [lam_d * (1 - sigmoid(beta * (1.0 - 0.3))),  # desirable: λ_D (1 − σ(β (r − z0)))
            lam_u * (1 - sigmoid(beta * (0.3 + 1.0))),  # undesirable: λ_U (1 − σ(β (z0 − r)))
            lam_d * (1 - sigmoid(beta * (0.5 - 0.3))),
            lam_u * (1 - sigmoid(beta * (0.3 + 1.0)))]
    torch.testing.assert_close(losses, torch.tensor(want))
    torch.testing.assert_close(rewards, torch.tensor([0.5, -0.5, 0.25, -0.5]))
    assert not rewards.requires_grad


def test_kto_gradient_raises_desirable_and_lowers_undesirable_and_skips_z0():
    policy = torch.tensor([-1.0, -3.0], requires_grad=True)
    policy_kl = torch.tensor([-2.0, -1.0], requires_grad=True)
    reference = torch.tensor([-2.0, -2.0])
    z0 = kto_reference_point(policy_kl, torch.tensor([-2.5, -2.0]))
    losses, _ = kto_loss(policy, reference, torch.tensor([True, False]), z0, 0.1, 1.0, 1.0)
    losses.sum().backward()
    assert policy.grad[0] < 0 and policy.grad[1] > 0  # descent raises log π(y⁺), lowers log π(y⁻)
    assert policy_kl.grad is None  # the reference point is a constant of the loss
    # the gradient by hand: ∂/∂r λ_D (1 − σ(β(r − z0))) = −λ_D β σ(u)(1 − σ(u)), u = β(r − z0)
    u = 0.1 * (1.0 - z0.item())
    assert policy.grad[0].item() == pytest.approx(-0.1 * sigmoid(u) * (1 - sigmoid(u)))


def test_weights_scale_each_side():
    args = (torch.tensor([-1.0, -1.0]), torch.tensor([-1.5, -1.5]), torch.tensor([True, False]), torch.tensor(0.0), 0.2)
    base, _ = kto_loss(*args, 1.0, 1.0)
    scaled, _ = kto_loss(*args, 3.0, 0.5)
    torch.testing.assert_close(scaled, base * torch.tensor([3.0, 0.5]))


def test_unpair_gives_one_desirable_and_one_undesirable_example_per_pair():
    pairs = [PreferencePair("p1", "good", "bad", "on_policy"), PreferencePair("p2", "yes", "no")]
    assert unpair(pairs) == [UnpairedExample("p1", "good", True, "on_policy"), UnpairedExample("p1", "bad", False, "on_policy"),
                             UnpairedExample("p2", "yes", True, "file"), UnpairedExample("p2", "no", False, "file")]


def test_mismatched_partners_take_another_prompts_completion():
    prompts = ["a", "a", "b", "b", "c", "c", "d", "d"]
    partners = mismatched_partners(prompts, seed=3)
    assert all(prompts[j] != prompts[i] for i, j in enumerate(partners))
    assert partners == mismatched_partners(prompts, seed=3)  # seeded: a resumed run pairs the same way
    assert mismatched_partners(prompts, seed=4) != partners or len(set(prompts)) == 1
    same = mismatched_partners(["x", "x", "x"], seed=0)  # no other prompt: another example all the same
    assert all(j != i for i, j in enumerate(same))
    assert mismatched_partners(["x"], seed=0) == [0]


# ---- configs and the trainer ---------------------------------------------------------------------

TINY = ["model=tiny", "algo=kto", "model.tiny_hidden=32", "model.tiny_heads=2", "task.n_eval=4", "eval.every=0",
        "eval.batch_size=4", "eval.max_new_tokens=4", "algo.max_completion_length=4", "save_model=false", "torch_threads=1"]


def test_kto_config_composes_and_validates(llm_cfg):
    cfg = llm_cfg("algo=kto")
    validate(cfg)
    assert cfg.algo.beta == 0.1 and cfg.algo.desirable_weight == 1.0 and cfg.algo.undesirable_weight == 1.0
    assert cfg.run_name == "addition-smollm2/kto_beta0.1_lr1e-06/seed0"


@pytest.mark.parametrize("override, message", [
    ("algo.beta=0", r"algo.beta=0.0 must be > 0"),
    ("algo.desirable_weight=-1", r"algo.desirable_weight=-1.0 must be > 0"),
    ("algo.undesirable_weight=0", r"algo.undesirable_weight=0.0 must be > 0"),
    ("algo.batch_size=0", r"algo.batch_size=0 must be an integer >= 1"),
    ("algo.lr_schedule=step", r"algo.lr_schedule='step' is not one of: constant, linear, cosine"),
])
def test_bad_kto_options_are_one_clear_line(llm_cfg, override, message):
    with pytest.raises(ConfigError, match=message) as e:
        validate(llm_cfg("algo=kto", override))
    assert "\n" not in str(e.value)


def brute_force_logp(model, prompt, completion) -> float:
    """log π(y|x), one unpadded sequence, token by token."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(logp[len(prompt) + t - 1, y].item() for t, y in enumerate(completion))


def test_tiny_model_learns_a_planted_preference_from_unpaired_examples(llm_cfg, tmp_path):
    # digits desirable, letters undesirable, after the same kind of prompt: a preference a random model does not hold
    pairs = [PreferencePair(f"Q: What is {a} + {a + 3}?\nA: ", str(2 * a + 3), "abc"[a % 3] * (1 + a % 2)) for a in range(12)]
    write_jsonl(tmp_path / "prefs.jsonl", pairs)
    trainer = build_trainer(llm_cfg(*TINY, f"algo.data_file={tmp_path}/prefs.jsonl", "algo.steps=12", "algo.batch_size=8",
                                    "algo.micro_batch_size=4", "algo.lr=3e-3", "algo.beta=0.5", "checkpoint_every=100"))
    summary = trainer.train()
    kto = trainer.algorithm
    assert summary["algo"] == "KTO" and summary["examples"] == {"desirable": 12, "undesirable": 12}
    # the cached reference is the starting policy: every change starts at 0
    before, after = summary["train_examples_before"], summary["train_examples_after"]
    assert before["logps/chosen_change"] == pytest.approx(0.0, abs=1e-4) and before["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert after["logps/chosen_change"] - after["logps/rejected_change"] > 1.0, after
    assert after["rewards/margins"] > 0.5
    # the first step's reference point: π = π_ref, so z0 = max(0, ~0) ≈ 0
    assert trainer.history[0]["kl"] == pytest.approx(0.0, abs=1e-4)

    # z0 as a step computes it (batched, padded mismatched rows) against brute-force log-probs of each
    # mismatched pair (its prompt, its partner's completion), on the trained weights and the next step's batch
    idx = epoch_batch(len(kto.examples), 8, trainer.step, trainer.cfg.seed)
    model = trainer.model.eval()
    by_hand = [brute_force_logp(model, kto.rows[i][0], kto.rows[kto.partners[i]][1]) - kto.ref_kl[i].item() for i in idx.tolist()]
    z0 = max(0.0, sum(by_hand) / len(by_hand))
    got = kto_reference_point(kto.logps([kto.kl_rows[i] for i in idx]), kto.ref_kl[idx]).item()
    assert got == pytest.approx(z0, abs=1e-4)
    assert all(kto.examples[i].prompt != kto.examples[j].prompt for i, j in enumerate(kto.partners))

    ea = EventAccumulator(str(trainer.run_dir))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    for t in ("kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected", "count/chosen",
              "count/rejected", "losses/kto", "eval/accuracy", "train_examples/logps/chosen_change"):
        assert t in tags, t
    assert (trainer.run_dir / "pairs.jsonl").is_file() and (trainer.run_dir / "preferences.pt").is_file()


def test_task_pairs_run_and_resume_from_the_cache(llm_cfg):
    args = [*TINY, "algo.num_prompts=4", "algo.num_samples=2", "algo.steps=2", "algo.batch_size=4", "algo.lr=1e-3"]
    first = build_trainer(llm_cfg(*args, "checkpoint_every=1"))
    first.a.steps = 1  # stopped after its first checkpoint, as if killed
    first.train()
    (first.run_dir / "status.json").unlink()
    second = build_trainer(llm_cfg(*args))
    second.train()
    assert second.step == 2 and second.algorithm.examples == first.algorithm.examples
    assert second.algorithm.partners == first.algorithm.partners
    torch.testing.assert_close(second.algorithm.ref_kl, first.algorithm.ref_kl)
    assert {e.source for e in second.algorithm.examples} <= {"on_policy", "fallback"}


def test_beta_and_the_two_weights_are_config_keys_that_reach_the_step(llm_cfg, tmp_path):
    # at the first step π = π_ref, so r = 0 and z0 = 0: each example's loss is λ (1 − σ(0)) = λ/2, and its gradient
    # −λ β σ'(0) ∇log π = −λ β/4 ∇log π is linear in β and in λ (both sides scaled alike)
    pairs = [PreferencePair(f"Q: What is {a} + {a + 3}?\nA: ", str(2 * a + 3), "abc"[a % 3] * (1 + a % 2)) for a in range(12)]
    write_jsonl(tmp_path / "prefs.jsonl", pairs)

    def first_step(*overrides):
        run = build_trainer(llm_cfg(*TINY, f"algo.data_file={tmp_path}/prefs.jsonl", "algo.steps=1", "algo.batch_size=8",
                                    "algo.micro_batch_size=8", "eval.before=false", *overrides,
                                    f"run_name=w{len(list(tmp_path.glob('runs/*')))}"))
        run.train()
        return run.history[0]

    h = first_step("algo.beta=0.2", "algo.desirable_weight=2.0", "algo.undesirable_weight=0.5")
    n_d, n_u = h["count/chosen"], h["count/rejected"]
    assert n_d + n_u == 8 and n_d > 0 and n_u > 0
    assert h["losses/kto"] == pytest.approx((2.0 * n_d + 0.5 * n_u) / (2 * 8), abs=1e-5)
    base = first_step("algo.beta=0.2")
    assert first_step("algo.beta=0.4")["stats/grad_norm"] == pytest.approx(2 * base["stats/grad_norm"], rel=1e-4)
    both = first_step("algo.beta=0.2", "algo.desirable_weight=3.0", "algo.undesirable_weight=3.0")
    assert both["stats/grad_norm"] == pytest.approx(3 * base["stats/grad_norm"], rel=1e-4)
