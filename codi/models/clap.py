"""CoDi's CLAP audio encoder: HTSAT Swin + projection, giving one unit-norm token per clip.

transformers' `ClapAudioModelWithProjection` is a port of LAION-CLAP's HTSAT (bn0 over mel bins,
bicubic stretch and fold to a 256×256 image, Swin stages, mean of the final tokens, Linear-ReLU-
Linear projection) and computes what CoDi's `clap.model` computes, so it is reused as is. CoDi adds
the waveform front end (`codi.models.clap_features`) and the L2 normalisation to a `[B,1,D]` token.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import ClapAudioConfig, ClapAudioModelWithProjection

from codi.models.clap_features import Crop, clap_log_mel
from codi.models.official_config import OfficialConfig


def clap_audio_config(official: OfficialConfig) -> ClapAudioConfig:
    """The HTSAT-large configuration CoDi builds (sizes from the official runtime overrides)."""
    htsat = official.runtime_overrides["HTSAT_large"]
    return ClapAudioConfig(
        patch_embeds_hidden_size=htsat["embed_dim"],
        depths=list(htsat["depths"]),
        num_attention_heads=list(htsat["num_heads"]),
        num_hidden_layers=len(htsat["depths"]),
        hidden_size=official.runtime_overrides["CLAP_audio_projection_in"],
        projection_dim=official.codi["clap_cfg"]["args"]["joint_embed_shape"],
        num_classes=official.runtime_overrides["HTSAT_class_num"],
        window_size=8,
        spec_size=256,
        patch_size=4,
        patch_stride=[4, 4],
        num_mel_bins=64,
        hidden_act="gelu",
        projection_hidden_act="relu",
        layer_norm_eps=1e-5,
        enable_fusion=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.0,
    )


class CodiClapAudioModel(ClapAudioModelWithProjection):
    """CLAP audio tower as CoDi uses it: 16 kHz waveform or log-mel → unit-norm `[B,1,D]`."""

    def embed_log_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel `[B,1,1001,64]` → L2-normalised projected embedding `[B,1,D]`."""
        pooled = self.audio_model(input_features=log_mel).pooler_output
        return F.normalize(self.audio_projection(pooled), dim=-1)[:, None, :]

    def encode_audio(
        self,
        wave_16k: torch.Tensor,
        crop: Crop = "center",
        rng: np.random.RandomState | None = None,
    ) -> torch.Tensor:
        """Waveforms at 16 kHz, `[T]`, `[B,T]` or `[B,1,T]` → `[B,1,D]` (CoDi's audio condition).

        The front end runs in float32 whatever the model dtype (log power overflows fp16).
        Clips over 10 s are cut to 10 s: crop="center" (default) or "start" are deterministic;
        crop="official" draws the offset from NumPy's legacy RNG (`rng`, default the global one)
        exactly as the official code does, so `np.random.seed(s)` reproduces its result.
        """
        log_mel = clap_log_mel(wave_16k.to(self.device, torch.float32), crop=crop, rng=rng)
        return self.embed_log_mel(log_mel.to(self.dtype))
