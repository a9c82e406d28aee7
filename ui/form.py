"""The studio form as plain values: its fields, their defaults, and the request they describe.

Every form field is one `/generate` API parameter, named as here. Nothing in this module needs
Gradio, so it is tested (and reused by the API, the examples and the history) without a browser.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from codi.errors import CoDiUserError
from codi.pipeline.request import (
    DEFAULT_STRENGTH,
    MODALITIES,
    START_MODALITIES,
    ConditionInput,
    GenerationRequest,
    GenerationSettings,
    StartInput,
    TextDecoding,
)

#: Input slots per modality: "text" and "text2", "image" and "image2", ...
SLOTS: tuple[str, ...] = tuple(f"{m}{n}" for m in MODALITIES for n in ("", "2"))
SETTING_FIELDS: tuple[str, ...] = (
    "steps", "guidance_scale", "negative_text", "seed", "randomize_seed", "image_size",
    "num_frames", "fps", "num_samples", "text_mode", "temperature", "max_tokens", "sampler",
)
#: The settings whose defaults belong to the model (a model switch resets them).
MODEL_SETTING_FIELDS: tuple[str, ...] = tuple(
    f for f in SETTING_FIELDS if f not in ("negative_text", "seed", "randomize_seed"))
#: Variations: per image/audio/video output, an optional start file and its strength.
START_FIELDS: tuple[str, ...] = tuple(
    f"start_{m}{part}" for m in START_MODALITIES for part in ("", "_strength"))
#: Every field, in API order: each slot's value, weight and switch, then outputs and settings,
#: then the variations' starts (last, so that older positional API calls keep their meaning).
FIELDS: tuple[str, ...] = (
    *(f"{slot}{part}" for slot in SLOTS for part in ("", "_weight", "_on")),
    "video_soundtrack", "outputs", *SETTING_FIELDS, *START_FIELDS,
)
#: Steps on the tiny random model, whose outputs are noise at any step count.
TINY_RANDOM_STEPS = 10


def slot_modality(slot: str) -> str:
    """"image2" → "image"."""
    return slot.rstrip("2")


def default_form(tiny_random: bool = False, model_defaults: dict | None = None) -> dict[str, Any]:
    """The form as the page opens: first slots on, second slots off, the model's settings
    (the official ones unless the model folder says otherwise, as CoDi-Nano does)."""
    settings = GenerationSettings(**(model_defaults or {}))
    form: dict[str, Any] = {}
    for slot in SLOTS:
        form[slot] = "" if slot_modality(slot) == "text" else None
        form[f"{slot}_weight"] = 1.0
        form[f"{slot}_on"] = not slot.endswith("2")
    form |= {
        "video_soundtrack": False,
        "outputs": ["image"],
        "steps": TINY_RANDOM_STEPS if tiny_random else settings.steps,
        "guidance_scale": settings.guidance_scale,
        "negative_text": "",
        "seed": 0,
        "randomize_seed": True,
        "image_size": settings.image_size,
        "num_frames": settings.num_frames,
        "fps": settings.fps,
        "num_samples": settings.num_samples,
        "text_mode": settings.text_decoding.mode,
        "temperature": settings.text_decoding.temperature,
        "max_tokens": settings.text_decoding.max_tokens,
        "sampler": settings.sampler,
    }
    for modality in START_MODALITIES:
        form[f"start_{modality}"] = None
        form[f"start_{modality}_strength"] = DEFAULT_STRENGTH
    return form


def complete_form(
    values: dict[str, Any], tiny_random: bool = False, model_defaults: dict | None = None
) -> dict[str, Any]:
    """`values` over the defaults; unknown names are a user error (a typo in an API call)."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise CoDiUserError(f"Unknown field(s) {', '.join(unknown)}; the fields are: "
                            f"{', '.join(FIELDS)}.")
    return default_form(tiny_random, model_defaults) | values


def _has_value(value: Any) -> bool:
    return bool(value.strip()) if isinstance(value, str) else value is not None


def active_inputs(form: dict[str, Any]) -> list[ConditionInput]:
    """The inputs that are switched on and filled in, in slot order."""
    inputs = []
    for slot in SLOTS:
        value = form.get(slot)
        if not form.get(f"{slot}_on") or not _has_value(value):
            continue
        modality = slot_modality(slot)
        inputs.append(ConditionInput(
            modality,
            value.strip() if modality == "text" else Path(_file_path(value)),
            _number(form.get(f"{slot}_weight", 1.0), f"{slot} weight"),
            use_soundtrack=modality == "video" and bool(form.get("video_soundtrack")),
        ))
    return inputs


def _outputs(form: dict[str, Any]) -> list[str]:
    outputs = form.get("outputs") or []
    if isinstance(outputs, str):
        outputs = [o.strip() for o in outputs.split(",") if o.strip()]
    return list(outputs)


def active_starts(form: dict[str, Any]) -> list[StartInput]:
    """The variations' starts: a start file given for an output that is chosen. A start of an
    output that is not chosen is left out (the page hides it with its output)."""
    outputs = _outputs(form)
    starts = []
    for modality in START_MODALITIES:
        value = form.get(f"start_{modality}")
        if modality not in outputs or not _has_value(value):
            continue
        strength = form.get(f"start_{modality}_strength")
        strength = DEFAULT_STRENGTH if strength is None else _number(
            strength, f"Strength of the start {modality}")
        starts.append(StartInput(modality, Path(_file_path(value)), strength))
    return starts


def _file_path(value: Any) -> str:
    """A file field's path: gradio passes a str; API users may pass a FileData-like dict."""
    if isinstance(value, dict):
        value = value.get("path") or value.get("video", {}).get("path")
    if not isinstance(value, (str, Path)) or not str(value):
        raise CoDiUserError(f"Expected a file, got {type(value).__name__}.")
    return str(value)


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CoDiUserError(f"{name}: {value!r} is not a number.") from None
    if not math.isfinite(number):
        raise CoDiUserError(f"{name} must be a finite number.")
    return number


def _whole(value: Any, name: str) -> int:
    number = _number(value, name)
    if number != int(number):
        raise CoDiUserError(f"{name} must be a whole number, not {value}.")
    return int(number)


def settings_from_form(form: dict[str, Any]) -> GenerationSettings:
    """The sampler settings of the form. A random seed is drawn here, below 2**32, so that a
    browser's number field shows it exactly (the pipeline's own draws go up to 2**63)."""
    if form.get("randomize_seed"):
        seed = secrets.randbelow(2**32)
    else:
        seed = _whole(form.get("seed", 0), "Seed")
    return GenerationSettings(
        steps=_whole(form["steps"], "Steps"),
        sampler=str(form.get("sampler") or "ddim"),
        guidance_scale=_number(form["guidance_scale"], "Guidance scale"),
        negative_text=(form.get("negative_text") or "").strip() or None,
        seed=seed,
        image_size=_whole(form["image_size"], "Image size"),
        num_frames=_whole(form["num_frames"], "Video frames"),
        fps=_number(form["fps"], "Frames per second"),
        num_samples=_whole(form["num_samples"], "Samples"),
        text_decoding=TextDecoding(
            form["text_mode"], _number(form["temperature"], "Temperature"),
            _whole(form["max_tokens"], "Text length"),
        ),
    )


#: GenerationSettings fields the form sets; the others (cross_modal, connectors, ...) take the
#: model's defaults (`apply_model_defaults`).
FORM_SETTINGS = frozenset({"steps", "guidance_scale", "negative_text", "seed", "image_size",
                           "num_frames", "fps", "num_samples", "text_decoding", "sampler"})


def apply_model_defaults(
    settings: GenerationSettings, model_defaults: dict[str, Any] | None
) -> GenerationSettings:
    """`settings` with the model's defaults for every setting the form does not show."""
    hidden = {k: v for k, v in (model_defaults or {}).items() if k not in FORM_SETTINGS}
    return replace(settings, **hidden)


def request_from_form(form: dict[str, Any]) -> GenerationRequest:
    """The validated request the form describes (CoDiUserError with a readable message)."""
    request = GenerationRequest(
        inputs=active_inputs(form), outputs=_outputs(form), settings=settings_from_form(form),
        starts=active_starts(form),
    )
    request.validate()
    return request


def describe_inputs(form: dict[str, Any]) -> str:
    """One line naming the inputs in use with their weights, e.g. "text ×1, image ×0.5"."""
    parts = []
    for item in active_inputs(form):
        extra = " + soundtrack" if item.use_soundtrack else ""
        parts.append(f"{item.modality} ×{item.weight:g}{extra}")
    return ", ".join(parts)


def describe_starts(form: dict[str, Any]) -> str:
    """The outputs that start from a file, e.g. "image from a file at strength 0.6"."""
    return ", ".join(f"{start.modality} from a file at strength {start.strength:g}"
                     for start in active_starts(form))
