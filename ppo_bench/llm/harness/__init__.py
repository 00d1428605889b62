"""What every LM algorithm shares: ``models`` (models and tokenizers), ``tasks`` and ``rewards`` (problems and
verifiable rewards), ``sampling`` and ``logprobs`` (generation, per-token log-probs, scalar heads), ``batches`` and
``preferences`` (preference pairs and the rows they are scored in), ``reward_models`` (scoring with a trained reward
model), ``evaluate`` (held-out figures), ``tblog`` (TensorBoard), ``config`` (the shared settings and checks),
``registry`` (the algorithms by name) and ``run`` (the run harness: the loop, checkpoints, resume, the summary).
It imports no algorithm."""
