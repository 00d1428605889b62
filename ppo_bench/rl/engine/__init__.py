"""The population engine: vector actors and rollouts, networks and action distributions, normalisation,
per-run optimisers and random streams, the run configuration, and the trainer that drives any algorithm
for R runs in one process. It knows no particular algorithm."""
