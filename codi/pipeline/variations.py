"""Variations (SDEdit): an output starts from given media instead of pure noise.

The media is encoded with the output's own VAE (posterior mean, so the same file always gives
the same start), and joins the denoising loop at the step its strength selects, noised to that
step by the output's scheduler (`add_noise`). Strength 1 runs every step from the request's own
noise, which is ordinary generation; strength 0 runs none and returns the media's VAE round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from codi.media.limits import MediaLimits
from codi.models.mel import SAMPLE_RATE
from codi.models.vae import encode_audio_posterior
from codi.pipeline.components import DECODERS_OF_MODALITY
from codi.pipeline.inputs import source_name
from codi.pipeline.request import GenerationSettings, StartInput


@dataclass
class StartLatent:
    """An output's clean start latent `(n, *shape)` and the loop step at which it joins.

    `index` == steps means it never joins: the output is the start itself.
    """

    latent: torch.Tensor
    index: int


def start_index(steps: int, strength: float) -> int:
    """The step a start joins at: the last round(steps × strength) steps denoise it."""
    return steps - round(steps * strength)


def square_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """An RGB image resized on its short side and centre-cropped to `size`², as [3,size,size]
    in the VAE's range [-1, 1]."""
    image = image.convert("RGB")
    scale = size / min(image.size)
    width, height = (max(size, round(d * scale)) for d in image.size)
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def fit_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` frames from [F,H,W,3]: as decoded, or the last repeated when the clip had fewer."""
    if len(frames) >= count:
        return frames[:count]
    return np.concatenate([frames, np.repeat(frames[-1:], count - len(frames), axis=0)])


def fit_time(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """An audio latent (b,c,T,bins) cut or zero-padded to `frames` along T."""
    if latent.shape[2] >= frames:
        return latent[:, :, :frames]
    pad = latent.new_zeros(*latent.shape[:2], frames - latent.shape[2], latent.shape[3])
    return torch.cat([latent, pad], dim=2)


class StartEncoder:
    """Start media → clean latents, with the output modality's VAE."""

    def __init__(
        self,
        component: Callable[[str], torch.nn.Module],
        limits: MediaLimits,
        audio_latent_frames: int,
        audio_seconds: float,
    ) -> None:
        self.component = component
        self.limits = limits
        self.audio_latent_frames = audio_latent_frames
        self.audio_seconds = audio_seconds

    def _vae(self, modality: str) -> torch.nn.Module:
        return self.component(DECODERS_OF_MODALITY[modality][0])

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[n,3,H,W] in [-1,1] → scaled posterior means [n,4,H/8,W/8] (float32, CPU)."""
        vae = self._vae("image")
        mean = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean
        return (vae.config.scaling_factor * mean.float()).cpu()

    def image(self, value: Any, settings: GenerationSettings) -> torch.Tensor:
        from codi.media.image import load_image

        image = load_image(value, self.limits).image
        return self._encode_pixels(square_pixels(image, settings.image_size)[None])

    def video(self, value: Any, settings: GenerationSettings) -> torch.Tensor:
        from codi.media.video import load_video

        frames = value if isinstance(value, np.ndarray) else load_video(
            value, settings.num_frames, self.limits).frames
        frames = fit_frames(frames, settings.num_frames)
        pixels = torch.stack([square_pixels(Image.fromarray(f), settings.image_size)
                              for f in frames])
        return self._encode_pixels(pixels).permute(1, 0, 2, 3)[None]  # [1,4,F,h,w]

    def audio(self, value: Any, settings: GenerationSettings) -> torch.Tensor:
        from codi.media.audio import load_audio

        if isinstance(value, np.ndarray):  # a bare array is a 16 kHz waveform
            value = (SAMPLE_RATE, value)
        wave = torch.from_numpy(load_audio(value, SAMPLE_RATE, self.limits).wave)[None]
        vae = self._vae("audio")
        posterior = encode_audio_posterior(vae, wave.to(vae.device), self.audio_seconds)
        latent = (vae.config.scaling_factor * posterior.mean).cpu()
        return fit_time(latent, self.audio_latent_frames)

    def encode(self, start: StartInput, settings: GenerationSettings) -> torch.Tensor:
        """The clean latent of one start, repeated for every sample: (num_samples, *shape)."""
        latent = getattr(self, start.modality)(start.value, settings)
        return latent.expand(settings.num_samples, *latent.shape[1:]).contiguous()


def encode_starts(
    starts: list[StartInput], settings: GenerationSettings, encoder: StartEncoder
) -> dict[str, StartLatent]:
    """The starts that change the loop (strength below 1), by output modality."""
    encoded = {}
    for start in starts:
        index = start_index(settings.steps, start.strength)
        if index > 0:  # strength 1: every step from the request's noise, i.e. ordinary
            encoded[start.modality] = StartLatent(encoder.encode(start, settings), index)
    return encoded


def start_summaries(starts: list[StartInput], steps: int) -> list[dict[str, Any]]:
    """The starts as the result metadata records them (recall restores them)."""
    return [{"modality": s.modality, "source": source_name(s.value), "strength": s.strength,
             "joins_at_step": start_index(steps, s.strength)} for s in starts]


def noised_start(
    scheduler: Any, clean: torch.Tensor, noise: torch.Tensor, index: int, t: torch.Tensor
) -> torch.Tensor:
    """`clean` noised to timestep `t` (loop step `index`) the way `scheduler` expects its input
    there (sigma-based schedulers are told where they begin)."""
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(index)
    return scheduler.add_noise(clean, noise, t.reshape(1))
