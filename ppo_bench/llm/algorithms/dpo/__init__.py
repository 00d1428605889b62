"""DPO and its variants (IPO, conservative DPO, reference-free, asymmetric β, DPO-P, DPO + SFT): ``loss`` one function per
variant, ``config`` the settings, ``trainer`` the step on preference pairs."""
