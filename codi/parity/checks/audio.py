"""Parity checks of the AudioLDM autoencoder with its mel front end, and of the HiFi-GAN."""

from __future__ import annotations

import torch

from codi.models.mel import mel_basis, wav_to_fbank
from codi.models.vae import decode_audio_latents, encode_audio, encode_audio_posterior
from codi.models.vocoder import mel_to_waveform, vocode
from codi.parity.fixtures import Comparison, FixtureContext
from codi.parity.tolerances import FORWARD_ATOL


def check_audioldm_vae(ctx: FixtureContext) -> list[Comparison]:
    """Decode (with and without the latent safeguard), vocoder, fbank, posterior, seeded sample."""
    vae, vocoder = ctx.model("vae_audio"), ctx.model("vocoder")
    t, seconds = ctx.tensors, float(ctx.param("time"))
    mel = decode_audio_latents(vae, t["z"])
    posterior = encode_audio_posterior(vae, t["wav_in"], seconds)
    torch.manual_seed(ctx.torch_seed())
    sample = encode_audio(vae, t["wav_in"], seconds)
    fbank = wav_to_fbank(t["wav_in"], int(ctx.param("target_length")))
    return [
        Comparison("mel", mel, t["mel"], FORWARD_ATOL),
        Comparison(
            "mel_from_z_big", decode_audio_latents(vae, t["z_big"]), t["mel_from_z_big"],
            FORWARD_ATOL,
        ),
        Comparison("waveform", mel_to_waveform(vocoder, t["mel"]), t["waveform"], FORWARD_ATOL),
        Comparison("mel_basis", mel_basis(), t["mel_basis"], FORWARD_ATOL),
        Comparison("fbank", fbank, t["fbank"], FORWARD_ATOL),
        Comparison("posterior_mean", posterior.mean, t["posterior_mean"], FORWARD_ATOL),
        Comparison("posterior_logvar", posterior.logvar, t["posterior_logvar"], FORWARD_ATOL),
        Comparison("encode_sample", sample, t["encode_sample_seed92"], FORWARD_ATOL),
    ]


def check_hifigan_vocoder(ctx: FixtureContext) -> list[Comparison]:
    """The vocoder alone, official layout (b, mels, frames) → (b, 1, frames*160 + 32)."""
    waveform = vocode(ctx.model("vocoder"), ctx.tensors["mel"])
    return [Comparison("waveform", waveform, ctx.tensors["waveform"], FORWARD_ATOL)]


CHECKS = {"audioldm_vae": check_audioldm_vae, "hifigan_vocoder": check_hifigan_vocoder}
