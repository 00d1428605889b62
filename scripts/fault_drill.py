"""The fault drill (ppo_bench/fault_drill.py): every fault a run can meet — changed settings on resume or in a
sweep, a diverging member, a damaged or malicious checkpoint, two processes on one folder, SIGKILL / SIGTERM /
SIGINT, bad input, file modes, a full disk — provoked on small runs; writes results/faults.md with the outcome of
each, what was lost, and whether the resumed runs are bit-identical to an uninterrupted one. Exit code 1 when a
row fails.

    python scripts/fault_drill.py                          the whole battery (a few minutes of CPU), results/faults.md
    python scripts/fault_drill.py --only sigterm,corrupt --out /tmp/faults.md --workdir /tmp/drill
"""

import sys

from ppo_bench.fault_drill import main

if __name__ == "__main__":
    sys.exit(main())
