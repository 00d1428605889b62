"""The GRPO reference run: SmolLM2-135M-Instruct on 2-digit addition, on CPU.

    python scripts/llm_grpo_addition.py                 # train (or resume), then write the results
    python scripts/llm_grpo_addition.py --from-run DIR  # only rewrite the results from a run's logs

Trains with conf_llm/experiment/grpo_addition.yaml (the same as
`ppo-bench-llm +experiment=grpo_addition`), then writes results/llm/grpo_addition.json (model,
task, steps, wall_s, n_eval, acc_before, acc_after, peak memory, the config, and the benchmark line:
seconds per step split into generation / reference+old log-probs / update) and
results/llm/grpo_addition.png (reward and accuracy curves read back from the run's TensorBoard
events). A killed run resumes from its last checkpoint when the command is run again; a finished one
is not retrained. Extra Hydra overrides may follow, e.g. `seed=1` or `max_wall_s=600`.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python scripts/...): the repository root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.llm_reference import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("grpo_addition", "GRPO", __doc__))
