"""Inputs → CoDi's single 768-d conditioning token per input, and their unconditional twins.

Every condition is one L2-normalised token `[n, 1, D]`: CLIP for text, images and videos, CLAP for
audio. The unconditional token of each input is what the official code feeds for "nothing": the
empty prompt, an all-zero image or video (mid-grey after CLIP preprocessing), a silent waveform.

Deviation from the official code, by default: image conditions are centre-cropped and never
flipped, and long audio is centre-cropped, so the same request gives the same result. With
`official_randomness` the official random crop, random horizontal flip (drawn from the request's
torch generator) and NumPy-drawn CLAP crop are reproduced instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from codi.models.clip import tokenize
from codi.pipeline.preprocess import clip_pixels

#: The official image conditions are resized to this square before CLIP's own resize to 224.
IMAGE_CONDITION_SIZE = 512
#: The official video conditions are resized to this square, frame by frame.
VIDEO_CONDITION_SIZE = 256


@dataclass
class EncodedCondition:
    """One input's conditional and unconditional tokens `[n, 1, D]`, with its weight."""

    modality: str
    cond: torch.Tensor
    uncond: torch.Tensor
    weight: float


@dataclass
class RandomSources:
    """Where the random choices of official-mode preprocessing come from (per request)."""

    torch_generator: torch.Generator
    numpy_rng: np.random.RandomState
    official: bool


def image_to_condition_tensor(image: Image.Image, rng: RandomSources) -> torch.Tensor:
    """A PIL RGB image → `[3, 512, 512]` in [-1, 1]: square crop, bicubic resize (and flip)."""
    width, height = image.size
    side = min(width, height)
    if rng.official and (width, height) != (side, side):
        top = int(torch.randint(0, height - side + 1, (1,), generator=rng.torch_generator))
        left = int(torch.randint(0, width - side + 1, (1,), generator=rng.torch_generator))
    else:
        top, left = (height - side) // 2, (width - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((IMAGE_CONDITION_SIZE, IMAGE_CONDITION_SIZE), Image.BICUBIC)
    if rng.official and float(torch.rand(1, generator=rng.torch_generator)) < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return pixels.float() / 255 * 2 - 1


def video_to_condition_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames `[F, H, W, 3]` → `[3, F, 256, 256]` in [-1, 1], as the official code does.

    Centre square crop (ceil/floor offsets), bicubic resize on the uint8 frames without
    antialiasing, rounded and clamped back to uint8 (torchvision 0.13 semantics).
    """
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    height, width = video.shape[-2:]
    side = min(height, width)
    top, left = int(np.ceil((height - side) / 2)), int(np.ceil((width - side) / 2))
    video = video[..., top:top + side, left:left + side].float()
    size = (VIDEO_CONDITION_SIZE, VIDEO_CONDITION_SIZE)
    video = F.interpolate(video, size=size, mode="bicubic", align_corners=False)
    video = video.round().clamp(0, 255)
    return (video / 255 * 2 - 1).permute(1, 0, 2, 3)


class ConditionEncoder:
    """Encodes each input modality with the component that CoDi uses for it."""

    def __init__(
        self,
        component: Callable[[str], torch.nn.Module],
        clip_tokenizer,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.component = component
        self.clip_tokenizer = clip_tokenizer
        self.device = device
        self.dtype = dtype

    def text(self, prompts: list[str]) -> torch.Tensor:
        ids = tokenize(self.clip_tokenizer, prompts).to(self.device)
        return self.component("clip_text").encode(ids).float()

    def pixels(self, condition: torch.Tensor) -> torch.Tensor:
        """`[B,3,H,W]` images or `[B,3,F,H,W]` videos in [-1,1] → tokens."""
        pixels = clip_pixels(condition).to(self.device, self.dtype)
        return self.component("clip_vision").encode(pixels).float()

    def audio(self, waves: torch.Tensor, rng: RandomSources) -> torch.Tensor:
        """`[B, T]` 16 kHz waveforms → tokens."""
        crop = "official" if rng.official else "center"
        return self.component("clap").encode_audio(waves, crop=crop, rng=rng.numpy_rng).float()

    def encode(
        self, modality: str, value, weight: float, n: int, rng: RandomSources,
        negative_text: str | None = None,
    ) -> EncodedCondition:
        """One decoded input → its conditional and unconditional tokens, n rows each."""
        if modality == "text":
            cond, uncond = self.text([value, negative_text or ""]).split(1)
        elif modality == "image":
            tensor = image_to_condition_tensor(value, rng)[None]
            cond, uncond = self.pixels(torch.cat([tensor, torch.zeros_like(tensor)])).split(1)
        elif modality == "video":
            tensor = video_to_condition_tensor(value)[None]
            cond, uncond = self.pixels(torch.cat([tensor, torch.zeros_like(tensor)])).split(1)
        elif modality == "audio":
            wave = torch.as_tensor(value, dtype=torch.float32)[None]
            if rng.official:  # one draw per copy, conditional copies first, as the official code
                cond = self.audio(wave.expand(n, -1), rng)
                uncond = self.audio(torch.zeros_like(wave).expand(n, -1), rng)
                return EncodedCondition(modality, cond, uncond, weight)
            cond, uncond = self.audio(torch.cat([wave, torch.zeros_like(wave)]), rng).split(1)
        else:
            raise ValueError(f"unknown modality {modality!r}")
        return EncodedCondition(modality, cond.expand(n, -1, -1), uncond.expand(n, -1, -1), weight)
