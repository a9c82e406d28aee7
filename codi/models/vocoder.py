"""AudioLDM's 16 kHz / 64-mel HiFi-GAN as transformers `SpeechT5HifiGan`.

`SpeechT5HifiGan` computes the official generator exactly: conv_pre (k7), per stage LeakyReLU 0.1
→ ConvTranspose1d (padding (k-u)//2) → mean of the type-1 ResBlocks, then LeakyReLU with the
default slope 0.01, conv_post (k7), tanh. Weight norm is already folded into the official weights.
Its input is (b, frames, mels); the official layout (b, mels, frames) is handled by `vocode`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from codi.models.official_config import OfficialConfig

#: AudioLDM's hard-coded `HIFIGAN_16K_64` sizes (the width is in the runtime overrides).
HIFIGAN_16K_64: dict[str, Any] = {
    "num_mels": 64,
    "sampling_rate": 16000,
    "upsample_rates": [5, 4, 2, 2, 2],
    "upsample_kernel_sizes": [16, 16, 8, 4, 4],
    "upsample_initial_channel": 1024,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}


def vocoder_config(official: OfficialConfig) -> SpeechT5HifiGanConfig:
    """The `SpeechT5HifiGanConfig` of the official vocoder (no input normalisation)."""
    hp = {**HIFIGAN_16K_64, **official.runtime_overrides.get("HIFIGAN_16K_64", {})}
    return SpeechT5HifiGanConfig(
        model_in_dim=hp["num_mels"],
        sampling_rate=hp["sampling_rate"],
        upsample_initial_channel=hp["upsample_initial_channel"],
        upsample_rates=list(hp["upsample_rates"]),
        upsample_kernel_sizes=list(hp["upsample_kernel_sizes"]),
        resblock_kernel_sizes=list(hp["resblock_kernel_sizes"]),
        resblock_dilation_sizes=[list(d) for d in hp["resblock_dilation_sizes"]],
        leaky_relu_slope=0.1,
        normalize_before=False,
    )


def build_vocoder(official: OfficialConfig) -> SpeechT5HifiGan:
    """The HiFi-GAN vocoder (`audioldm.vocoder.*`)."""
    return SpeechT5HifiGan(vocoder_config(official))


def vocode(vocoder: SpeechT5HifiGan, mel: torch.Tensor) -> torch.Tensor:
    """Official layout: log-mel (b, mels, frames) → waveform (b, 1, frames*160 + 32)."""
    return vocoder(mel.transpose(1, 2)).unsqueeze(1)


def mel_to_waveform(vocoder: SpeechT5HifiGan, mel: torch.Tensor) -> torch.Tensor:
    """The official `mel_spectrogram_to_waveform`: VAE output (b, 1, frames, mels) → (b, 1, n)."""
    return vocoder(mel.squeeze(1)).unsqueeze(1)
