"""Tolerances, as observed between runs of the official code itself.

See parity README §5 (docs/quirks.md).
"""

#: One float32 forward pass (UNets, VAEs, vocoder, CLIP, CLAP, Optimus).
FORWARD_ATOL = 1e-4
#: The CLAP log-mel, in dB: its float32 DFT-by-convolution sums in the CPU kernels' order, so the
#: quietest bins move by up to 1.1e-3 dB on an AVX-512 CPU (under 1e-4 on AVX2).
LOG_MEL_DB_ATOL = 5e-3
#: Image/video/audio latents along a DDIM trajectory with guidance 7.5.
TRAJECTORY_ATOL = 2e-3
#: The text latent along a DDIM trajectory (guidance amplifies the UNet's 3e-5 spread).
TEXT_TRAJECTORY_ATOL = 2e-2
#: Token ids, timesteps, uint8 pixels of an exact latent.
EXACT = 0.0
#: uint8 pixels decoded from a latent that is only near-exact.
PIXEL_ATOL = 1.0
