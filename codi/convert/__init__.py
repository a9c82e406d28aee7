"""Official CoDi checkpoints → our diffusers-style folder (`python -m codi.convert`)."""
