"""Request inputs → decoded media the condition encoders take (PIL images, 16 kHz waves, frames)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from codi.media.limits import MediaLimits
from codi.models.mel import SAMPLE_RATE
from codi.pipeline.request import ConditionInput

#: Frames sampled from a video input. The official demo asks for 8 (its loader silently took 4).
CONDITION_VIDEO_FRAMES = 8


@dataclass
class DecodedInput:
    """One input ready for its encoder, with what the user should be told about it."""

    modality: str
    value: Any
    weight: float
    source: str
    notices: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description for the result metadata."""
        return {"modality": self.modality, "weight": self.weight, "source": self.source}


def source_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    return f"<{type(value).__name__}>"


def decode_input(item: ConditionInput, limits: MediaLimits) -> list[DecodedInput]:
    """One input; a video with `use_video_soundtrack` also yields its audio track as an input."""
    from codi.media.audio import load_audio
    from codi.media.image import load_image
    from codi.media.video import load_video

    source = "text" if item.modality == "text" else source_name(item.value)
    if item.modality == "text":
        return [DecodedInput("text", item.value, item.weight, item.value)]
    if item.modality == "image":
        loaded = load_image(item.value, limits)
        return [DecodedInput("image", loaded.image, item.weight, source, loaded.notices)]
    if item.modality == "audio":
        value = item.value
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):  # a bare array is a 16 kHz waveform
            value = (SAMPLE_RATE, value)
        loaded = load_audio(value, SAMPLE_RATE, limits)
        return [DecodedInput("audio", loaded.wave, item.weight, source, loaded.notices)]
    if isinstance(item.value, np.ndarray):  # already-decoded uint8 frames [F, H, W, 3]
        return [DecodedInput("video", item.value, item.weight, source)]
    video = load_video(item.value, CONDITION_VIDEO_FRAMES, limits)
    decoded = [DecodedInput("video", video.frames, item.weight, source, video.notices)]
    if item.use_soundtrack and video.audio is not None:
        decoded.append(
            DecodedInput("audio", video.audio.wave, item.weight, f"{source} (soundtrack)")
        )
    return decoded


def decode_inputs(inputs: list[ConditionInput], limits: MediaLimits) -> list[DecodedInput]:
    """Every input of a request, in order (user errors raise `CoDiUserError`)."""
    return [decoded for item in inputs for decoded in decode_input(item, limits)]
