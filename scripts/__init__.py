"""Tools that exercise ppo-bench as a user does: drills, reference runs, benchmarks. Not part of the library."""
