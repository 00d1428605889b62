"""The reward model of RLHF: ``loss`` Bradley–Terry, ``config`` the settings, ``trainer`` the step on preference pairs.
Scoring with a trained one is the harness's (``harness.reward_models``): PPO and the evaluation use it too."""
