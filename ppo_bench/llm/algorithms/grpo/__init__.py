"""GRPO (DeepSeekMath): ``loss`` the equations, ``config`` the settings, ``trainer`` the step."""
