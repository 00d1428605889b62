"""The reward model: the Bradley–Terry loss by hand; on the tiny model it learns a planted preference,
and PPO scores its completions with it in place of the verifier."""

import math

import torch

from ppo_bench.llm.harness.preferences import PreferencePair, write_jsonl
from ppo_bench.llm.algorithms.reward_model.loss import bradley_terry_loss
from ppo_bench.llm.harness.reward_models import HEAD_FILE
from ppo_bench.llm.launch import build_trainer


def test_bradley_terry_loss_and_gradient_by_hand():
    chosen = torch.tensor([2.0, 0.0, -1.0], requires_grad=True)
    rejected = torch.tensor([1.0, 0.0, 1.0], requires_grad=True)
    loss = bradley_terry_loss(chosen, rejected)
    # −log σ(d): d = 1, 0, −2
    expected = [math.log(1 + math.exp(-1.0)), math.log(2.0), math.log(1 + math.exp(2.0))]
    torch.testing.assert_close(loss, torch.tensor(expected))
    loss.sum().backward()
    # ∂/∂r⁺ = −(1 − σ(d)) = −σ(−d); ∂/∂r⁻ = +σ(−d)
    grad = torch.tensor([-1 / (1 + math.exp(1.0)), -0.5, -1 / (1 + math.exp(-2.0))])
    torch.testing.assert_close(chosen.grad, grad)
    torch.testing.assert_close(rejected.grad, -grad)


def test_reward_model_learns_a_planted_preference_and_ppo_uses_it(llm_cfg, tmp_path):
    # digits preferred over letters after the same prompt: a preference a random model does not hold
    pairs = [PreferencePair(f"Q: reverse {w}\nA: ", str(10 + 7 * i), "xyzw"[i % 4] * (1 + i % 3))
             for i, w in enumerate(["abc", "dog", "tree", "moon", "cat", "sun", "leaf", "star"] * 3)]
    write_jsonl(tmp_path / "prefs.jsonl", pairs)
    tiny = ["model=tiny", "task=reverse", "task.n_eval=4", "eval.every=0", "eval.batch_size=4", "eval.max_new_tokens=4",
            "torch_threads=1"]
    rm = build_trainer(llm_cfg(*tiny, "algo=reward_model", f"algo.data_file={tmp_path}/prefs.jsonl", "algo.steps=12",
                               "algo.batch_size=6", "algo.lr=3e-3", "algo.eval_fraction=0.25"))
    summary = rm.train()
    assert summary["algo"] == "reward model" and summary["n_eval"] == 6
    assert summary["acc_after"] == 1.0 and summary["evals"][-1]["accuracy"] == 1.0, summary["evals"]
    assert rm.history[-1]["losses/bradley_terry"] < rm.history[0]["losses/bradley_terry"]
    assert (rm.run_dir / "model" / HEAD_FILE).is_file()

    # PPO with the reward model as its reward: r(q, o) for each completion, no verifier
    policy = build_trainer(llm_cfg(*tiny, "algo=ppo", f"algo.reward_model={rm.run_dir}/model", "algo.steps=1",
                                   "algo.prompts_per_step=4", "algo.minibatch_size=4", "algo.max_completion_length=4",
                                   "save_model=false", "eval.before=false"))
    policy.train()
    h = policy.history[0]
    assert policy.algorithm.label == "PPO (reward model)" and "rewards/reward_model/mean" in h
    assert h["objective/scores"] == h["rewards/reward_model/mean"] and h["objective/scores"] != 0.0
