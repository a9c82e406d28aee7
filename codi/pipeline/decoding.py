"""Final latents → images, video frames, waveforms and sentences, as the official code decodes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from codi.models.optimus_decoding import decode_text_latents, postprocess_text
from codi.models.vae import decode_audio_latents, decode_image_latents
from codi.models.vocoder import mel_to_waveform
from codi.pipeline.request import TextDecoding


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """VAE output in [-1, 1] → uint8, as the official `ToPILImage`: clamp((x+1)/2)·255 truncated."""
    unit = ((pixels.float() + 1) / 2).clamp(0, 1)
    return (unit * 255).to(torch.uint8).cpu().numpy()


class LatentDecoder:
    """Decodes each output modality with the components CoDi uses for it."""

    def __init__(self, component: Callable[[str], torch.nn.Module], gpt2_tokenizer) -> None:
        self.component = component
        self.gpt2_tokenizer = gpt2_tokenizer

    def image_pixels(self, z: torch.Tensor) -> np.ndarray:
        """[n,4,h,w] → uint8 [n,H,W,3]."""
        vae = self.component("vae_image")
        pixels = decode_image_latents(vae, z.to(vae.device, vae.dtype))
        return to_uint8(pixels.permute(0, 2, 3, 1))

    def images(self, z: torch.Tensor) -> list[Image.Image]:
        return [Image.fromarray(array) for array in self.image_pixels(z)]

    def videos(self, z: torch.Tensor) -> list[np.ndarray]:
        """[n,4,F,h,w] → n uint8 arrays [F,H,W,3], decoded frame by frame as the official code."""
        n, channels, frames, height, width = z.shape
        flat = z.permute(0, 2, 1, 3, 4).reshape(n * frames, channels, height, width)
        pixels = self.image_pixels(flat)
        return list(pixels.reshape(n, frames, *pixels.shape[1:]))

    def audios(self, z: torch.Tensor) -> list[np.ndarray]:
        """[n,8,256,16] → n float32 waveforms at 16 kHz in [-1, 1]."""
        vae, vocoder = self.component("vae_audio"), self.component("vocoder")
        mel = decode_audio_latents(vae, z.to(vae.device, vae.dtype))
        wave = mel_to_waveform(vocoder, mel.to(vocoder.device, vocoder.dtype))
        return [w[0].float().cpu().numpy() for w in wave]

    def texts(
        self, z: torch.Tensor, scale_factor: float, options: TextDecoding,
        generator: torch.Generator | None,
    ) -> list[str]:
        """[n,768] → n sentences (Optimus GPT-2), cleaned up as the official code does."""
        decoder = self.component("optimus_decoder")
        latents = (z / scale_factor).to(decoder.device, decoder.dtype)
        raw = decode_text_latents(
            decoder, self.gpt2_tokenizer, latents,
            greedy=options.mode == "greedy", temperature=options.temperature,
            max_length=options.max_tokens, generator=generator,
        )
        return [postprocess_text(text) for text in raw]
