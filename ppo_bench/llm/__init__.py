"""GRPO (and, later, DPO) for small causal language models on verifiable tasks (docs/llm.md).

Modules: ``models`` (models and tokenizers), ``tasks`` and ``rewards`` (problems and verifiable
rewards), ``sampling`` and ``logprobs`` (generation, per-token log-probs), ``grpo`` (the equations
and the loss), ``train`` (the loop, checkpoints, timing), ``evaluate`` (held-out greedy accuracy),
``tblog`` (TensorBoard), ``plots`` (figures from a run's logs), ``cli`` (the ``ppo-bench-llm`` app).
Nothing heavy is imported here, so ``import ppo_bench.llm`` works without the ``llm`` extra.
"""
