"""Parity check of the SD autoencoder (`autokl` fixture)."""

from __future__ import annotations

import torch

from codi.models.vae import decode_image_latents, encode_sample
from codi.parity.fixtures import Comparison, FixtureContext
from codi.parity.tolerances import FORWARD_ATOL


def check_autokl(ctx: FixtureContext) -> list[Comparison]:
    """Posterior, seeded encode sample, image decode and per-frame video decode."""
    vae = ctx.model("vae_image")
    t = ctx.tensors
    posterior = vae.encode(t["image"]).latent_dist
    torch.manual_seed(ctx.torch_seed())
    sample = encode_sample(vae, t["image"])
    return [
        Comparison("posterior_mean", posterior.mean, t["posterior_mean"], FORWARD_ATOL),
        Comparison("posterior_logvar", posterior.logvar, t["posterior_logvar"], FORWARD_ATOL),
        Comparison("encode_sample", sample, t["encode_sample_seed81"], FORWARD_ATOL),
        Comparison("decoded", decode_image_latents(vae, t["z"]), t["decoded"], FORWARD_ATOL),
        Comparison(
            "decoded_video", decode_image_latents(vae, t["z_video"]), t["decoded_video"],
            FORWARD_ATOL,
        ),
    ]


CHECKS = {"autokl": check_autokl}
