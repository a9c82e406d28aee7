"""Training code for both CoDi stages (used to train CoDi-Nano; runs under `accelerate launch`)."""
