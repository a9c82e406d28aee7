"""A square picture of a generation, for galleries: image, first video frame, waveform or text."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

THUMB = 256
BACKGROUND, INK, ACCENT = (30, 27, 75), (224, 231, 255), (129, 140, 248)


def _card(lines: list[str]) -> Image.Image:
    card = Image.new("RGB", (THUMB, THUMB), BACKGROUND)
    draw = ImageDraw.Draw(card)
    for i, line in enumerate(lines[:12]):
        draw.text((14, 14 + 19 * i), line, fill=INK)
    return card


def _waveform(wave: np.ndarray) -> Image.Image:
    card = Image.new("RGB", (THUMB, THUMB), BACKGROUND)
    draw = ImageDraw.Draw(card)
    columns = np.array_split(np.asarray(wave, dtype=np.float32), THUMB)
    peak = max(float(np.abs(wave).max()), 1e-6)
    for x, column in enumerate(columns):
        if column.size:
            top = THUMB / 2 - float(column.max()) / peak * (THUMB / 2 - 20)
            bottom = THUMB / 2 - float(column.min()) / peak * (THUMB / 2 - 20)
            draw.line([(x, top), (x, bottom)], fill=ACCENT)
    draw.text((14, 14), "audio", fill=INK)
    return card


def save_thumbnail(
    path: Path,
    images: Sequence[Image.Image] = (),
    videos: Sequence[np.ndarray] = (),
    audios: Sequence[np.ndarray] = (),
    texts: Sequence[str] = (),
) -> Path:
    """A square PNG of a result: its first image, else its video's first frame, its sound's
    waveform or its text, in that order."""
    if images:
        picture = images[0].convert("RGB")
    elif videos:
        picture = Image.fromarray(videos[0][0])
    elif audios:
        picture = _waveform(audios[0])
    else:
        picture = _card(textwrap.wrap(texts[0] if texts else "", 34) or ["text"])
    picture = picture.resize((THUMB, THUMB), Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path
