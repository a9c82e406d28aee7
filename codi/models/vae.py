"""The SD and AudioLDM autoencoders: diffusers `AutoencoderKL` built from the official ddconfig.

Both official VAEs are the LDM kl autoencoder (GroupNorm eps 1e-6, SiLU, encoder downsample
pad (0,1,0,1) + stride-2 conv, nearest-x2 upsample, single-head mid attention), which is exactly
what diffusers `AutoencoderKL` computes. The latent scale factor is stored in its config as
`scaling_factor`. Helpers here add what CoDi does around the VAE: the seeded posterior sample,
per-frame video decoding and the audio latent safeguard. The encoding side runs its exp/log steps
in float32 whatever the VAE's dtype: the posterior's variance exp(logvar) reaches e^20 (fp16 tops
out at 65504) and the fbank's STFT and log are not fp16 operations (the CPU has no half FFT).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from codi.models.mel import fbank_frames, wav_to_fbank
from codi.models.official_config import OfficialConfig

#: Official `audioldm_decode`: when max|z| exceeds this, z is first clipped to ±AUDIO_LATENT_CLIP.
AUDIO_LATENT_GUARD = 100.0
AUDIO_LATENT_CLIP = 10.0


def autoencoder_from_ddconfig(vae_args: dict[str, Any], scaling_factor: float) -> AutoencoderKL:
    """diffusers `AutoencoderKL` with the structure of an official `autoencoderkl` config `args`."""
    dd = vae_args["ddconfig"]
    if vae_args["embed_dim"] != dd["z_channels"] or not dd.get("double_z", True):
        raise ValueError("AutoencoderKL needs embed_dim == z_channels and double_z")
    if dd.get("attn_resolutions"):
        raise ValueError("attention outside the mid-block is not supported")
    levels = len(dd["ch_mult"])
    return AutoencoderKL(
        in_channels=dd["in_channels"],
        out_channels=dd["out_ch"],
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(dd["ch"] * m for m in dd["ch_mult"]),
        layers_per_block=dd["num_res_blocks"],
        act_fn="silu",
        latent_channels=dd["z_channels"],
        norm_num_groups=32,
        sample_size=dd["resolution"],
        scaling_factor=scaling_factor,
    )


def build_image_vae(official: OfficialConfig) -> AutoencoderKL:
    """The SD kl-f8 autoencoder (`autokl.*`), scaling_factor = the vision scale factor."""
    return autoencoder_from_ddconfig(
        official.codi["autokl_cfg"]["args"], official.scale_factors["image"]
    )


def build_audio_vae(official: OfficialConfig) -> AutoencoderKL:
    """The AudioLDM autoencoder (`audioldm.*` minus vocoder), scaling_factor = the audio one."""
    return autoencoder_from_ddconfig(
        official.codi["audioldm_cfg"]["args"], official.scale_factors["audio"]
    )


def encode_sample(
    vae: AutoencoderKL, x: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """scaling_factor * (mean + std * randn): the official `autokl_encode`/`audioldm_encode`
    (float32, drawn in float32)."""
    posterior = float32_posterior(vae.encode(x.to(vae.dtype)).latent_dist)
    return vae.config.scaling_factor * posterior.sample(generator)


def float32_posterior(posterior: DiagonalGaussianDistribution) -> DiagonalGaussianDistribution:
    """The same diagonal Gaussian with its mean, std and variance computed in float32."""
    return DiagonalGaussianDistribution(posterior.parameters.float())


def decode_image_latents(vae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """decode(z / scaling_factor); a 5-D video latent (b,c,f,h,w) is decoded frame by frame."""
    if z.dim() == 5:
        b, c, f, h, w = z.shape
        frames = decode_image_latents(vae, z.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return frames.reshape(b, f, *frames.shape[1:]).permute(0, 2, 1, 3, 4)
    return vae.decode(z / vae.config.scaling_factor).sample


def decode_audio_latents(vae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """Audio latent (b,8,T/4,16) → log-mel (b,1,T,64), with the official safeguard applied."""
    if z.abs().max() > AUDIO_LATENT_GUARD:
        z = z.clamp(-AUDIO_LATENT_CLIP, AUDIO_LATENT_CLIP)
    return decode_image_latents(vae, z)


def encode_audio_posterior(
    vae: AutoencoderKL, wav: torch.Tensor, seconds: float
) -> DiagonalGaussianDistribution:
    """The AudioLDM posterior (float32) of 16 kHz waves (b, samples), cut or padded to
    `seconds`; the fbank is computed in float32, then given to the VAE in its dtype."""
    with torch.autocast(wav.device.type, enabled=False):
        fbank = wav_to_fbank(wav.float(), fbank_frames(seconds))
    return float32_posterior(vae.encode(fbank.to(vae.dtype)).latent_dist)


def encode_audio(
    vae: AutoencoderKL,
    wav: torch.Tensor,
    seconds: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The official `audioldm_encode`: scaling_factor * posterior sample (default 2 s)."""
    posterior = encode_audio_posterior(vae, wav, seconds)
    return vae.config.scaling_factor * posterior.sample(generator)
