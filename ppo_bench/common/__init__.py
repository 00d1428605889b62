"""The shared layer: atomic files, errors, run identity, run folders and checkpoints, TensorBoard event files,
the loss toolkit shared by the RL engine and the LM algorithms, the machine's description, preemption and
progress, and the Hydra command-line runner. It imports nothing else of ppo_bench."""
