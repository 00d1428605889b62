"""GRPO, DPO, KTO, PPO and a reward model for small causal language models on verifiable tasks (docs/llm.md).

Modules: ``models`` (models and tokenizers), ``tasks`` and ``rewards`` (problems and verifiable
rewards), ``sampling`` and ``logprobs`` (generation, per-token log-probs), ``grpo``, ``dpo``, ``kto``,
``ppo``, ``reward_model`` (the equations and each algorithm's step), ``preferences`` (preference pairs),
``train`` (the run harness: the loop, checkpoints, timing), ``evaluate`` (held-out greedy accuracy),
``tblog`` (TensorBoard), ``plots`` (figures from a run's logs), ``cli`` (the ``ppo-bench-llm`` app).
Nothing heavy is imported here, so ``import ppo_bench.llm`` works without the ``llm`` extra.
"""
