"""The PPO reference run: SmolLM2-135M-Instruct on 2-digit addition, on CPU, in the GRPO run's budget.

    python scripts/llm_ppo_addition.py                  # train (or resume), then write the results
    python scripts/llm_ppo_addition.py --from-run DIR   # only rewrite the results from a run's logs

Trains with conf_llm/experiment/ppo_addition.yaml (the same as `ppo-bench-llm +experiment=ppo_addition`:
policy with a value head on its trunk, a frozen reference for the per-token KL reward, the task's
verifier; 45 minutes of training loop on a 2-core CPU), then writes results/llm/ppo_addition.json
(greedy held-out accuracy before and after on 200 problems, wall seconds, peak memory, seconds per
step, the config) and results/llm/ppo_addition.png (score and accuracy curves from the run's
TensorBoard events). A killed run resumes when the command is run again. Extra Hydra overrides may
follow, e.g. `max_wall_s=60` for a short check.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/...): the repository root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.llm_reference import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("ppo_addition", "PPO", __doc__))
