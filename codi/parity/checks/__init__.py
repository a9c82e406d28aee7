"""Parity checks by fixture name. Each group module exports `CHECKS: {fixture name: check}`."""

from __future__ import annotations

from collections.abc import Callable

from codi.parity.checks import (
    audio,
    clap,
    clip,
    optimus,
    pipeline,
    sampler,
    unet,
    unet_text,
    vae_image,
)
from codi.parity.fixtures import Comparison, FixtureContext

Check = Callable[[FixtureContext], list[Comparison]]

CHECKS: dict[str, Check] = {
    name: check
    for module in (unet, unet_text, vae_image, audio, optimus, clip, clap, sampler, pipeline)
    for name, check in module.CHECKS.items()
}
