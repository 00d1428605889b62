"""GRPO's levers to reach its answer sooner (docs/llm.md, "GRPO faster"): the learning-rate schedules by hand, the
parameter groups' own step sizes, sampling with top-k / top-p against a brute-force filter, and LoRA through peft."""

import math

import pytest

from ppo_bench.llm.launch import build_trainer

TINY = ["model=tiny", "task.n_eval=4", "eval.every=0", "eval.before=false", "eval.batch_size=4", "eval.max_new_tokens=4",
        "algo.max_completion_length=4", "save_model=false", "torch_threads=1", "checkpoint_every=100"]


@pytest.mark.parametrize("schedule, warmup, want", [
    ("constant", 0, lambda s: 1.0),
    ("linear", 0, lambda s: 1 - s / 10),
    ("cosine", 0, lambda s: 0.5 * (1 + math.cos(math.pi * s / 10))),
    ("cosine", 4, lambda s: min(1.0, (s + 1) / 4) * 0.5 * (1 + math.cos(math.pi * s / 10))),
])
def test_learning_rate_schedules_by_hand(llm_cfg, schedule, warmup, want):
    run = build_trainer(llm_cfg(*TINY, "algo.steps=10", f"algo.lr_schedule={schedule}", f"algo.warmup_steps={warmup}"))
    for step in range(11):
        assert run.lr_factor(step) == pytest.approx(want(step), abs=1e-12), step
    assert run.lr_factor(10) == pytest.approx(0.0 if schedule != "constant" else 1.0, abs=1e-12)


# ---- sampling filters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k, top_p", [(5, 1.0), (0, 0.3), (1, 1.0)])
def test_sampled_first_tokens_lie_in_the_brute_force_top_k_and_nucleus(char_tok, top_k, top_p):
    import torch

    from ppo_bench.llm.harness.models import tiny_model
    from ppo_bench.llm.harness.sampling import generate

    model = tiny_model(char_tok, seed=3).eval()
    prompt = "Q: abc\nA: "
    temperature = 0.7
    with torch.no_grad():
        ids = char_tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        probs = torch.softmax(model(input_ids=ids).logits[0, -1].double() / temperature, -1)
    order = probs.argsort(descending=True).tolist()
    keep, mass = set(), 0.0
    for i, t in enumerate(order):  # the brute-force filter: the k likeliest, then the smallest set reaching p
        if (top_k and i >= top_k) or mass >= top_p:
            break
        keep.add(t)
        mass += probs[t].item()
    torch.manual_seed(0)
    comp = generate(model, char_tok, [prompt], n=200, max_new_tokens=1, temperature=temperature, top_k=top_k, top_p=top_p)
    drawn = set(comp.completion_ids[:, 0].tolist())
    assert drawn <= keep, (sorted(drawn - keep), len(keep))
    assert len(drawn) > 1 or len(keep) == 1
    if top_k == 1:
        assert drawn == {order[0]}  # top-1 sampling is greedy decoding


def test_grpo_passes_its_sampling_filters_to_generate(llm_cfg, monkeypatch):
    import ppo_bench.llm.algorithms.grpo.trainer as grpo_trainer

    seen = []
    real = grpo_trainer.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["top_k"], kwargs["top_p"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(grpo_trainer, "generate", spy)
    run = build_trainer(llm_cfg(*TINY, "algo=grpo", "algo.steps=1", "algo.prompts_per_step=2", "algo.num_generations=2",
                                "algo.top_k=7", "algo.top_p=0.9"))
    run.train()
    assert seen == [(7, 0.9)]


# ---- LoRA through peft ------------------------------------------------------------------------------------------


def test_lora_trains_only_the_adapters_and_saves_a_merged_plain_model(llm_cfg, tmp_path):
    pytest.importorskip("peft")
    import torch
    from transformers import AutoModelForCausalLM

    from ppo_bench.llm.evaluate_run import load_trained
    from ppo_bench.llm.harness.models import char_tokenizer, tiny_model

    r, alpha = 4, 8.0
    run = build_trainer(llm_cfg(*TINY, "algo=grpo", "algo.steps=3", "algo.prompts_per_step=2", "algo.num_generations=4",
                                "algo.lr=5e-2",
                                f"model.lora_r={r}", f"model.lora_alpha={alpha}", "model.lora_targets=[q_proj,v_proj]",
                                "save_model=true"))
    trainable = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in trainable), trainable
    n_layers, hidden = run.cfg.model.tiny_layers, run.cfg.model.tiny_hidden
    assert sum(p.numel() for p in run.params) == n_layers * 2 * (2 * r * hidden)  # A (r×h) and B (h×r) per target
    start = tiny_model(char_tokenizer(), seed=0)
    run.algorithm.reward_fns = {"correct": lambda prompt, completion, **_: sum(c.isdigit() for c in completion) / 4}
    run.train()
    assert run.updates > 0
    # model/: a plain Hugging Face model whose adapted weights are W + (α/r)·B·A, every other weight untouched
    saved = AutoModelForCausalLM.from_pretrained(run.run_dir / "model", dtype=torch.float32)
    state = torch.load(run.run_dir / "checkpoint.pt", weights_only=True)["model"]
    moved = 0
    for name, w in saved.state_dict().items():
        w0 = start.state_dict()[name]
        if name.endswith(("q_proj.weight", "v_proj.weight")):
            stem = "base_model.model." + name.removesuffix(".weight")
            delta = (alpha / r) * state[f"{stem}.lora_B.default.weight"] @ state[f"{stem}.lora_A.default.weight"]
            torch.testing.assert_close(w, w0 + delta)
            moved += int(delta.abs().max() > 0)
        else:
            assert torch.equal(w, w0), name
    assert moved > 0
    # ppo-bench-llm-eval on the checkpoint alone (no model/) merges the same way
    reference = tiny_model(char_tokenizer(), seed=0).eval().requires_grad_(False)
    merged, _, _ = load_trained(run.run_dir, "checkpoint", reference, char_tokenizer(), torch.device("cpu"))
    for name, w in saved.state_dict().items():
        torch.testing.assert_close(merged.state_dict()[name], w)


def test_lora_settings_are_checked_in_one_line(llm_cfg, monkeypatch):
    import importlib.util

    from ppo_bench.common.errors import ConfigError
    from ppo_bench.llm.launch import validate

    for override, message in (("model.lora_r=-1", "model.lora_r=-1 must be an integer >= 0"),
                              ("model.lora_dropout=1.0", r"model.lora_dropout=1.0 must lie in \[0, 1\)"),
                              ("model.lora_targets=[]", "model.lora_targets is empty")):
        with pytest.raises(ConfigError, match=message):
            validate(llm_cfg(*TINY, "model.lora_r=4" if "lora_r" not in override else "model.lora_alpha=1", override))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(ConfigError, match=r"model.lora_r > 0 \(LoRA\) needs peft, which is not installed: pip install 'ppo-bench\[lora\]'"):
        validate(llm_cfg(*TINY, "model.lora_r=4"))
