"""GRPO, DPO, KTO, PPO and a reward model for small causal language models on verifiable tasks (docs/llm.md).

Layers, each importing only those below it (and ``ppo_bench.common``; never ``ppo_bench.rl`` or ``ppo_bench.analysis``):

  cli, evaluate_run, launch   the commands ``ppo-bench-llm`` and ``ppo-bench-llm-eval``, and launching a run from a
                              config (the built-in algorithms and the config's ``extensions`` imported first)
  algorithms/<name>/          one folder per algorithm (grpo, dpo, kto, ppo, reward_model): ``loss``, ``config``,
                              ``trainer``, registered by ``@register_lm_algorithm``
  harness/                    what they share: models, tasks, rewards, sampling, log-probs, preference data, the
                              run harness (``run.LMRun``), evaluation, TensorBoard, the shared config, the registry

Nothing heavy is imported here, so ``import ppo_bench.llm`` works without the ``llm`` extra.
"""
