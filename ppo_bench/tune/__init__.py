"""Hyperparameter search on the population engine (docs: "Tune hyperparameters"): Optuna's ask-and-tell with a batch
of trials trained as one population, pruned per trial, the study in SQLite beside the runs (``tuner``); search spaces
in the sweep grammar of Hydra's Optuna sweeper (``space``); the best settings as a preset, figures and a table
(``outputs``); the command ``ppo-bench-tune`` (``cli``). Above the analysis layer: a trial's value is Table 1's
normalised score."""
