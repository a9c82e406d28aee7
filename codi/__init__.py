"""CoDi Studio: any-to-any generation with Composable Diffusion (CoDi)."""

__version__ = "0.1.0"
