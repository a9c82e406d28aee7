"""Parity check of CoDi's CLIP: tokenizer, text tower, pixel preprocessing, image/video embeds."""

from __future__ import annotations

import re

import torch

from codi.models.clip import tokenize
from codi.parity.fixtures import Comparison, FixtureContext, MissingParameter
from codi.parity.tolerances import EXACT, FORWARD_ATOL
from codi.pipeline.preprocess import clip_pixels
from codi.store.tokenizers import load_clip_tokenizer

#: How the fixture's `official_call` writes the unconditional image: `torch.zeros(b,3,H,W)`.
ZERO_IMAGE_CALL = re.compile(r"torch\.zeros\(\s*\d+\s*,\s*3\s*,\s*(\d+)\s*,\s*(\d+)\s*\)")


def zero_image_shape(ctx: FixtureContext) -> tuple[int, int, int, int]:
    """The official unconditional image: its size as the call writes it, its batch as the
    expected embedding has it."""
    match = ZERO_IMAGE_CALL.search(ctx.entry.get("official_call", ""))
    if match is None:
        raise MissingParameter("official_call: torch.zeros(b,3,H,W) of the zero image")
    return (ctx.expected_shape("zero_image_embed")[0], 3, int(match[1]), int(match[2]))


def check_clip(ctx: FixtureContext) -> list[Comparison]:
    """Prompts → ids → text embeds; [-1,1] image/zeros/video → CLIP pixels → vision embeds."""
    t = ctx.tensors
    text, vision = ctx.model("clip_text"), ctx.model("clip_vision")
    ids = tokenize(load_clip_tokenizer(ctx.vocab_dir), ctx.extra("prompts"))
    image_pixels = clip_pixels(t["image"])
    video_pixels = clip_pixels(t["video"])
    zero_pixels = clip_pixels(torch.zeros(zero_image_shape(ctx)))
    return [
        Comparison("input_ids", ids, t["input_ids"], EXACT),
        Comparison(
            "text_last_hidden_state",
            text.text_model(input_ids=ids).last_hidden_state,
            t["text_last_hidden_state"],
            FORWARD_ATOL,
        ),
        Comparison("text_pooled_normed", text.encode(ids), t["text_pooled_normed"], FORWARD_ATOL),
        Comparison("pixel_values_image", image_pixels, t["pixel_values_image"], FORWARD_ATOL),
        Comparison("image_embed", vision.encode(image_pixels), t["image_embed"], FORWARD_ATOL),
        Comparison(
            "zero_image_embed", vision.encode(zero_pixels), t["zero_image_embed"], FORWARD_ATOL
        ),
        Comparison(
            "pixel_values_video_frame0",
            video_pixels[:, 0],
            t["pixel_values_video_frame0"],
            FORWARD_ATOL,
        ),
        Comparison("video_embed", vision.encode(video_pixels), t["video_embed"], FORWARD_ATOL),
    ]


CHECKS = {"clip": check_clip}
