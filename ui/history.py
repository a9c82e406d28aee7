"""This session's results: thumbnails for the history gallery and the entries behind them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from codi.result import GenerationResult

if TYPE_CHECKING:
    from ui.studio import StudioResult

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


def thumbnail(result: GenerationResult, path: Path) -> Path:
    """A square picture of a result: its image, its video's first frame, its sound or its text."""
    if result.images:
        picture = result.images[0].convert("RGB")
    elif result.videos:
        picture = Image.fromarray(result.videos[0][0])
    elif result.audios:
        picture = _waveform(result.audios[0])
    else:
        picture = _card(textwrap.wrap(result.texts[0] if result.texts else "", 34) or ["text"])
    picture = picture.resize((THUMB, THUMB), Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


@dataclass
class HistoryEntry:
    """One finished generation: the form that asked for it and the files it produced."""

    form: dict[str, Any]
    result: StudioResult
    number: int

    @property
    def caption(self) -> str:
        inputs = "+".join(dict.fromkeys(i["modality"] for i in self.result.metadata["inputs"]))
        outputs = "+".join(self.result.outputs)
        return f"#{self.number} {inputs} → {outputs} · seed {self.result.seed}"


def gallery_items(history: list[HistoryEntry]) -> list[tuple[str, str]]:
    """(thumbnail, caption) pairs, newest first."""
    return [(entry.result.thumbnail, entry.caption) for entry in reversed(history)]


def entry_at(history: list[HistoryEntry], gallery_index: int) -> HistoryEntry:
    """The entry shown at a gallery position (the gallery lists newest first)."""
    return history[len(history) - 1 - gallery_index]
