"""What a person asks CoDi for: inputs with weights, outputs, settings — checked up front."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from codi.errors import CoDiUserError

Modality = Literal["text", "image", "audio", "video"]
MODALITIES: tuple[str, ...] = ("text", "image", "audio", "video")
#: The temporal position tables of the video UNet hold 30 frames.
MAX_FRAMES = 30
MAX_IMAGE_SIZE = 1024
MAX_SAMPLES = 16
MAX_STEPS = 1000


@dataclass
class ConditionInput:
    """One input: its modality, its value (text, a path, or decoded media), and its weight."""

    modality: str
    value: Any
    weight: float = 1.0
    #: Video only: also condition on the clip's own audio track (same weight).
    use_soundtrack: bool = False


@dataclass
class TextDecoding:
    """How a text latent becomes words (official: sampling at temperature 1, 30 tokens)."""

    mode: Literal["sample", "greedy"] = "sample"
    temperature: float = 1.0
    max_tokens: int = 30


@dataclass
class GenerationSettings:
    """Sampler and output settings. Defaults are the official ones, except noted."""

    steps: int = 50
    guidance_scale: float = 7.5
    #: Replaces the empty prompt as the unconditional token of every text input; with no text
    #: input it is the whole unconditional context.
    negative_text: str | None = None
    seed: int | None = None
    image_size: int = 256
    num_frames: int = 8
    fps: float = 4.0
    num_samples: int = 1
    text_decoding: TextDecoding = field(default_factory=TextDecoding)
    #: Reproduce the official code's random choices (random crop and flip of image inputs,
    #: NumPy-drawn crop of long audio, discarded per-step noise draws), so a seed gives the
    #: official result. Off by default: the same request then always gives the same result.
    official_randomness: bool = False
    #: Connectors attend to the other outputs' environments (the paper's intent; not official).
    cross_modal: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GenerationRequest:
    """A whole request: a non-empty list of inputs and a non-empty set of outputs."""

    inputs: list[ConditionInput]
    outputs: list[str]
    settings: GenerationSettings = field(default_factory=GenerationSettings)

    def validate(self) -> None:
        """Raise `CoDiUserError` with a message a person can act on."""
        validate_request(self)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CoDiUserError(message)


def validate_request(request: GenerationRequest) -> None:
    """Every check that needs no model: modalities, weights, and the settings' ranges."""
    _check(bool(request.inputs), "Give at least one input (text, image, audio or video).")
    _check(bool(request.outputs), "Choose at least one output (text, image, audio or video).")
    for output in request.outputs:
        _check(output in MODALITIES,
               f"Unknown output {output!r}; choose from {', '.join(MODALITIES)}.")
    _check(len(set(request.outputs)) == len(request.outputs), "Each output can be chosen once.")
    for item in request.inputs:
        _check(item.modality in MODALITIES,
               f"Unknown input type {item.modality!r}; use {', '.join(MODALITIES)}.")
        _check(isinstance(item.weight, (int, float)) and math.isfinite(item.weight)
               and item.weight >= 0, f"The weight of the {item.modality} input must be ≥ 0.")
        if item.modality == "text":
            _check(isinstance(item.value, str) and item.value.strip() != "",
                   "A text input is empty: type a prompt or switch the text input off.")
        else:
            _check(item.value is not None, f"The {item.modality} input has no file.")
    _check(sum(item.weight for item in request.inputs) > 0,
           "All input weights are 0: give at least one input a weight above 0.")
    _validate_settings(request.settings)


def _validate_settings(s: GenerationSettings) -> None:
    _check(isinstance(s.steps, int) and 1 <= s.steps <= MAX_STEPS,
           f"Steps must be a whole number from 1 to {MAX_STEPS}.")
    _check(math.isfinite(s.guidance_scale) and 0 <= s.guidance_scale <= 50,
           "Guidance scale must be between 0 and 50 (1 turns guidance off; 7.5 is the default).")
    _check(isinstance(s.image_size, int) and s.image_size % 64 == 0
           and 64 <= s.image_size <= MAX_IMAGE_SIZE,
           f"Image size must be a multiple of 64 from 64 to {MAX_IMAGE_SIZE} (256 is the default).")
    _check(isinstance(s.num_frames, int) and 1 <= s.num_frames <= MAX_FRAMES,
           f"Video frames must be from 1 to {MAX_FRAMES} (8 is the default).")
    _check(math.isfinite(s.fps) and 0.5 <= s.fps <= 60, "Frames per second must be from 0.5 to 60.")
    _check(isinstance(s.num_samples, int) and 1 <= s.num_samples <= MAX_SAMPLES,
           f"Number of samples must be from 1 to {MAX_SAMPLES}.")
    _check(s.seed is None or (isinstance(s.seed, int) and 0 <= s.seed < 2**63),
           "The seed must be a whole number ≥ 0, or empty for a random one.")
    decoding = s.text_decoding
    _check(decoding.mode in ("sample", "greedy"), "Text decoding is 'sample' or 'greedy'.")
    _check(math.isfinite(decoding.temperature) and 0 < decoding.temperature <= 10,
           "Text temperature must be above 0 and at most 10.")
    _check(isinstance(decoding.max_tokens, int) and 2 <= decoding.max_tokens <= 256,
           "Text length must be from 2 to 256 tokens.")
