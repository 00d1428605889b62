"""The package's layers hold (.importlinter: analysis > rl | llm > common; inside rl and llm, command lines >
algorithms > engine / harness; the library never imports scripts/ or tests/), checked by import-linter."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    r = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr
