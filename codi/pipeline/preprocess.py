"""CLIP pixel preprocessing of CoDi's image and video conditions, exactly as the official code.

The official code hands `[0, 1]` float frames to the transformers-4.26 CLIP feature extractor, which
truncates `x·255` to uint8, PIL-bicubic-resizes the short side to 224 (antialiased), centre-crops
224, divides by 255 and normalises with CLIP's mean/std. Later `CLIPImageProcessor` versions rescale
floats differently (reference §0.9, docs/quirks.md), so we reproduce those steps here instead of
calling it.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_clip_uint8(x: torch.Tensor) -> torch.Tensor:
    """`[-1, 1]` floats → uint8 `(x+1)/2·255`, truncated (not rounded), in the input's dtype.

    Values outside [-1, 1] are clamped first (the official cast is undefined there).
    """
    return ((x.detach().cpu() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)


def _resize_short_side(image: Image.Image, size: int) -> Image.Image:
    """PIL bicubic resize so the short side is `size`; the long side is truncated to an int."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    if short == size:
        return image
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, resample=Image.BICUBIC)


def clip_frame(frame: torch.Tensor) -> torch.Tensor:
    """One uint8 frame `[3, H, W]` → CLIP pixels `[3, 224, 224]` (float32, normalised)."""
    image = _resize_short_side(Image.fromarray(frame.permute(1, 2, 0).numpy()), CLIP_SIZE)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    top = (pixels.shape[1] - CLIP_SIZE) // 2
    left = (pixels.shape[2] - CLIP_SIZE) // 2
    pixels = pixels[:, top:top + CLIP_SIZE, left:left + CLIP_SIZE].float() / 255
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean) / std


def clip_pixels(x: torch.Tensor) -> torch.Tensor:
    """CoDi image/video conditions in [-1, 1] → what the CLIP vision tower gets (CPU, fp32).

    Images `[B, 3, H, W]` → `[B, 3, 224, 224]`; videos `[B, 3, F, H, W]` → `[B, F, 3, 224, 224]`.
    """
    if x.ndim == 4:
        return torch.stack([clip_frame(frame) for frame in to_clip_uint8(x)])
    if x.ndim == 5:
        frames = to_clip_uint8(x).transpose(1, 2)
        return torch.stack([torch.stack([clip_frame(f) for f in video]) for video in frames])
    raise ValueError(f"expected [B,3,H,W] or [B,3,F,H,W], got shape {tuple(x.shape)}")
