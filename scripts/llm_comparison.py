"""The comparison of PPO, RLHF, GRPO, DPO's variants and KTO on 2-digit addition with SmolLM2-135M-Instruct, the same
wall-clock budget per method (docs/llm.md, "The comparison of the methods"; ppo_bench/llm/comparison.py).

    python scripts/llm_comparison.py                         train, evaluate, write results/llm/comparison.{md,json,png}
    python scripts/llm_comparison.py --budget-min 20         a larger budget per method (finished runs continue to it)
    python scripts/llm_comparison.py --model tiny --in-process --out /tmp/cmp --run-root /tmp/cmp/runs   a seconds-long check
    python scripts/llm_comparison.py --report-only           only rewrite the results

A relaunch skips what is finished and continues interrupted runs from their checkpoints. Hydra overrides for every
run may follow (e.g. device=cuda).
"""

import sys

from ppo_bench.llm.comparison import main

if __name__ == "__main__":
    sys.exit(main())
