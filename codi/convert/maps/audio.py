"""The AudioLDM autoencoder (`audioldm.*`) → diffusers `AutoencoderKL`, and its HiFi-GAN
(`audioldm.vocoder.*`) → transformers `SpeechT5HifiGan`."""

from __future__ import annotations

from codi.convert.maps.vae_image import ldm_vae_map
from codi.convert.spec import ComponentSpec, registered, rename_map
from codi.models.official_config import FULL_CODI_CONFIG

#: AudioLDM's VAE has 3 levels (4x reduction); the fixture models keep the official ch_mult length.
AUDIO_VAE_LEVELS = len(FULL_CODI_CONFIG["audioldm_cfg"]["args"]["ddconfig"]["ch_mult"])

_VOCODER_RULES = [
    (r"conv_(pre|post)\.(weight|bias)", r"conv_\1.\2"),
    (r"ups\.(\d+)\.(weight|bias)", r"upsampler.\1.\2"),
    (r"resblocks\.(\d+)\.convs([12])\.(\d+)\.(weight|bias)", r"resblocks.\1.convs\2.\3.\4"),
]

SPECS: list[ComponentSpec] = [
    ComponentSpec(
        name="vae_audio",
        prefixes=("audioldm.",),
        **registered("vae_audio"),
        map_tensor=ldm_vae_map(AUDIO_VAE_LEVELS),
        unused=(
            (
                r"fn_STFT\.(mel_basis|stft_fn\.forward_basis|stft_fn\.inverse_basis)",
                "recomputed: deterministic STFT/mel bases of the encode-only front end "
                "(codi.models.mel)",
            ),
        ),
    ),
    ComponentSpec(
        name="vocoder",
        prefixes=("audioldm.vocoder.",),
        **registered("vocoder"),
        map_tensor=rename_map(_VOCODER_RULES),
        fill_missing=(
            (r"mean", "zeros", "SpeechT5 input normalisation, off (normalize_before=False)"),
            (r"scale", "ones", "SpeechT5 input normalisation, off (normalize_before=False)"),
        ),
    ),
]
