"""Parity checks of the 2-D UNets, their connectors, joint generation and condition mixing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from codi.models.joint import UNET_OF_MODALITY, joint_forward, mix_conditions
from codi.models.unet_2d import unfold_frames
from codi.parity.fixtures import Comparison, FixtureContext, MissingParameter, SkipFixture
from codi.parity.tolerances import FORWARD_ATOL


def _official_block_modules(unet: nn.Module) -> dict[str, nn.Module]:
    """Our module whose output is the official `block_out.<name>` hook output."""
    blocks = {f"input_blocks.{i}": b for i, b in enumerate(unet.input_blocks)}
    blocks["middle_block"] = unet.middle_block[-1]
    blocks |= {f"output_blocks.{i}": b for i, b in enumerate(unet.output_blocks)}
    blocks |= {
        f"input_blocks.{i}.0.1": b.temporal for i, b in enumerate(unet.input_blocks) if b.temporal
    }
    return blocks


@contextmanager
def _capture(
    modules: dict[str, nn.Module], frames: int | None
) -> Iterator[dict[str, torch.Tensor]]:
    """Record each module's output; folded video activations come back as [B, C, T, H, W]."""
    outputs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_module, _args, out):
            video_folded = frames is not None and out.ndim == 4
            outputs[name] = unfold_frames(out, frames) if video_folded else out

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _block_comparisons(ctx: FixtureContext, captured: dict[str, torch.Tensor]) -> list[Comparison]:
    comparisons = []
    for key, expected in ctx.tensors.items():
        if key.startswith("block_out."):
            name = key[len("block_out.") :]
            comparisons.append(Comparison(key, captured[name], expected, FORWARD_ATOL))
    return comparisons


def single_unet(ctx: FixtureContext) -> str:
    """The UNet of a single-modality call: the one of its `xtype` (not of the fixture's name)."""
    xtype = ctx.param("xtype")
    if len(xtype) != 1:
        raise MissingParameter("extra.params.xtype (one output for a single-UNet call)")
    return UNET_OF_MODALITY[xtype[0]]


def check_single_unet(ctx: FixtureContext) -> list[Comparison]:
    """ε of one UNet (image, video or audio) and, where stored, every block's output."""
    t = ctx.tensors
    unet = ctx.model(single_unet(ctx))
    frames = t["x"].shape[2] if t["x"].ndim == 5 else None
    with torch.no_grad(), _capture(_official_block_modules(unet), frames) as captured:
        eps = unet(t["x"], t["timesteps"], t["context"])
    return [Comparison("eps", eps, t["eps"], FORWARD_ATOL), *_block_comparisons(ctx, captured)]


def mix_weights(ctx: FixtureContext, types: list[str]) -> list[float]:
    """`extra.params.mix_weight` of each condition type, in the call's order."""
    weights = ctx.param("mix_weight")
    missing = [c for c in types if c not in weights]
    if missing:
        raise MissingParameter(f"extra.params.mix_weight.{missing[0]}")
    return [float(weights[c]) for c in types]


def check_mix_conditions(ctx: FixtureContext) -> list[Comparison]:
    t = ctx.tensors
    types = ctx.param("condition_types")
    mixed = mix_conditions([t[f"cond_{c}"] for c in types], mix_weights(ctx, types))
    with torch.no_grad():
        eps = ctx.model(single_unet(ctx))(t["x"], t["timesteps"], mixed)
    return [
        Comparison("mixed_context", mixed, t["mixed_context"], FORWARD_ATOL),
        Comparison("eps", eps, t["eps"], FORWARD_ATOL),
    ]


def _component(ctx: FixtureContext, name: str) -> nn.Module:
    try:
        return ctx.model(name)
    except Exception as error:  # the text UNet is another family's; report, don't fail ours
        if name.startswith("unet_text"):
            raise SkipFixture(f"{name} unavailable: {error}") from error
        raise


def check_joint(ctx: FixtureContext) -> list[Comparison]:
    t, types = ctx.tensors, ctx.param("xtype")
    names = {m: UNET_OF_MODALITY[m] for m in types}
    unets = {m: _component(ctx, n) for m, n in names.items()}
    connectors = {m: _component(ctx, f"{n}_connectors") for m, n in names.items()}
    latents = {m: t[f"x{i}_{m}"] for i, m in enumerate(types)}
    with torch.no_grad():
        eps = joint_forward(unets, latents, t["timesteps"], t["context"], connectors)
        raws = {
            m: connectors[m].raw_environment(x, unets[m].time_embedding(t["timesteps"], x.dtype))
            for m, x in latents.items()
        }
    comparisons = []
    for i, m in enumerate(types):
        comparisons.append(Comparison(f"eps{i}_{m}", eps[m], t[f"eps{i}_{m}"], FORWARD_ATOL))
        raw_name = f"connector_raw{i}_{m}"
        comparisons.append(Comparison(raw_name, raws[m], t[raw_name], FORWARD_ATOL))
    return comparisons


CHECKS = {
    "unet_image": check_single_unet,
    "unet_video": check_single_unet,
    "unet_audio": check_single_unet,
    "mix_conditions": check_mix_conditions,
    "joint_image_text": check_joint,
    "joint_video_audio": check_joint,
    "joint_image_audio_text": check_joint,
}
