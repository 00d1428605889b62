"""KTO (Ethayarajh et al. 2024): ``loss`` the equations, ``config`` the settings, ``trainer`` the step on unpaired examples."""
