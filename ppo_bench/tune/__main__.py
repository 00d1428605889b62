"""`python -m ppo_bench.tune`: the same as `ppo-bench-tune`."""

import sys

from ppo_bench.tune.cli import main

sys.exit(main())
