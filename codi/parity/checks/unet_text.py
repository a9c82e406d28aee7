"""Parity check of the text UNet (`unet_text` fixture: one single-modality ε prediction)."""

from __future__ import annotations

from codi.parity.checks.unet import single_unet
from codi.parity.fixtures import Comparison, FixtureContext
from codi.parity.tolerances import FORWARD_ATOL


def check_unet_text(ctx: FixtureContext) -> list[Comparison]:
    """ε for a `[2, 768]` text latent at two timesteps; connectors do not run in single mode."""
    unet = ctx.model(single_unet(ctx))
    t = ctx.tensors
    eps = unet(t["x"], t["timesteps"], t["context"])
    return [Comparison("eps", eps, t["eps"], FORWARD_ATOL)]


CHECKS = {"unet_text": check_unet_text}
