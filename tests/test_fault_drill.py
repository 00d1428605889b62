"""The fault drill (scripts/fault_drill.py, scripts/fault_drill.py): a row computed end to end from what its
command did, a row whose command does not keep the promise fails the drill (exit code 1), and the run comparison
behind "bit-identical after resume" sees a one-ulp change."""

import torch

from scripts.fault_drill import Row, main, merged, mistyped_folder, run_differences
from ppo_bench.common.run_folder import save_checkpoint


def help_taken_for_an_error(drill):
    """A row whose expectation the command does not meet: `--help` exits 0, it is no one-line error."""
    row = Row("99", "`--help` taken for an error (must fail)")
    row.expect_one_line_error(row.ran(drill.run("ppo-bench", "--help")))
    return [row]


def test_a_row_end_to_end_and_a_failing_row_fails_the_drill(tmp_path):
    out = tmp_path / "faults.md"
    code = main(["--out", str(out), "--workdir", str(tmp_path / "d")],
                scenarios={"mistyped-folder": mistyped_folder, "help": help_taken_for_an_error})
    assert code == 1
    md = out.read_text()
    assert "Command: `python scripts/fault_drill.py`" in md and "Code: " in md
    assert "**1 of 2 rows pass; failing: 99.**" in md
    rows = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ") and " | " in line}
    assert "`ppo-bench env=inverted_pendulum " in rows["7d"] and "resume=true run_root=$D/signal-sigtrem`" in rows["7d"]
    assert ("exit 2: `error: resume=true but no run of this launch exists in $D/signal-sigtrem/InvertedPendulum-v5/"
            in rows["7d"]) and rows["7d"].endswith("| pass |")
    assert "| exit 0, nothing on stderr |" in rows["99"]
    assert rows["99"].endswith("| **FAIL**: not one error line (exit code 0, not 2; 0 lines on stderr, not 1) |")
    assert not (tmp_path / "d" / "signal-sigtrem").exists()


def test_run_differences_sees_one_ulp_and_ignores_wall_time(tmp_path):
    state = {"iteration": 3, "wall_s": 1.5, "model": {"w": torch.tensor([0.1, 0.2])}, "recent": [1.0, float("nan")]}
    for name, w, wall in (("a", 0.2, 1.5), ("b", 0.2, 9.0), ("c", torch.nextafter(torch.tensor(0.2), torch.tensor(1.0)).item(), 1.5)):
        (tmp_path / name).mkdir()
        save_checkpoint({**state, "wall_s": wall, "model": {"w": torch.tensor([0.1, w])}}, tmp_path / name)
    assert run_differences(tmp_path / "a", tmp_path / "b") == []  # wall time is no difference, NaN equals NaN
    assert run_differences(tmp_path / "a", tmp_path / "c") == ["checkpoint.model.w differs"]


def test_merged_overrides_replace_the_same_key():
    assert merged(["ppo-bench", "-m", "algo.epochs=1", "seed=0,1"], "algo.epochs=5", "+x.y=1") == \
        ["ppo-bench", "-m", "seed=0,1", "algo.epochs=5", "+x.y=1"]
