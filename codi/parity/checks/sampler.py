"""DDIM trajectories (fixtures ddim_*): our scheduler + joint UNet vs the official sampler."""

from __future__ import annotations

import re

import torch

from codi.models.joint import UNET_OF_MODALITY
from codi.parity.checks.unet import mix_weights
from codi.parity.fixtures import Comparison, FixtureContext, MissingParameter, SkipFixture
from codi.parity.tolerances import EXACT, TEXT_TRAJECTORY_ATOL, TRAJECTORY_ATOL
from codi.pipeline.sampling import StepResult, make_scheduler, sample_ddim


def indexed(tensors: dict[str, torch.Tensor], prefix: str) -> list[tuple[str, str]]:
    """[(key, modality)] for keys like `x_T.0_image` or `condition1_image`, in index order."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)_(\w+)")
    found = [(int(m[1]), key, m[2]) for key in tensors if (m := pattern.fullmatch(key))]
    return [(key, modality) for _, key, modality in sorted(found)]


def in_call_order(ctx: FixtureContext, prefix: str, param: str) -> list[str]:
    """The stored tensors `<prefix><i>_<type>`, checked against the call's list `param`."""
    found = indexed(ctx.tensors, prefix)
    if [kind for _, kind in found] != list(ctx.param(param)):
        raise MissingParameter(f"extra.params.{param} (matching the {prefix}* tensors)")
    return [key for key, _ in found]


def official_context(ctx: FixtureContext) -> torch.Tensor:
    """The [uncond; cond] context of the fixture's conditions, mixed by their type weights."""
    from codi.models.joint import mix_conditions

    keys = in_call_order(ctx, "condition", "condition_types")
    weights = mix_weights(ctx, list(ctx.param("condition_types")))
    return mix_conditions([ctx.tensors[key] for key in keys], weights)


def joint_denoiser(ctx: FixtureContext, modalities: list[str]):
    """A `DenoiseFn` over the fixture's outputs, connectors included when there are several."""
    from codi.models.joint import joint_forward

    unets = {m: ctx.model(UNET_OF_MODALITY[m]) for m in modalities}
    connectors = (
        {m: ctx.model(UNET_OF_MODALITY[m] + "_connectors") for m in modalities}
        if len(modalities) > 1
        else None
    )

    def denoise(latents, timesteps, context):
        return joint_forward(unets, latents, timesteps, context, connectors=connectors)

    return denoise


def check_ddim(ctx: FixtureContext) -> list[Comparison]:
    starts = dict(zip(ctx.param("xtype"), in_call_order(ctx, "x_T.", "xtype"), strict=True))
    by_modality = {m: ctx.tensors[key] for m, key in starts.items()}
    suffix_of = {m: key.removeprefix("x_T.") for m, key in starts.items()}
    if float(ctx.param("eta")) != 0.0:
        raise SkipFixture(f"eta={ctx.param('eta')}: only the official eta 0 is implemented")
    scheduler = make_scheduler(ctx.official)
    steps: list[StepResult] = []
    sample = sample_ddim(
        joint_denoiser(ctx, list(by_modality)),
        by_modality,
        official_context(ctx),
        scheduler,
        int(ctx.param("steps")),
        float(ctx.param("unconditional_guidance_scale")),
        on_step=steps.append,
    )
    timesteps = scheduler.timesteps.flip(0)
    alphas = scheduler.alphas_cumprod[timesteps].double()
    previous = torch.cat([scheduler.final_alpha_cumprod.view(1), alphas[:-1].float()]).double()
    comparisons = [
        Comparison("ddim_timesteps", timesteps, ctx.tensors["ddim_timesteps"], EXACT),
        Comparison("ddim_alphas", alphas, ctx.tensors["ddim_alphas"], EXACT),
        Comparison("ddim_alphas_prev", previous, ctx.tensors["ddim_alphas_prev"], EXACT),
    ]
    for modality, suffix in suffix_of.items():
        atol = TEXT_TRAJECTORY_ATOL if modality == "text" else TRAJECTORY_ATOL
        trajectory = torch.stack([s.latents[modality] for s in steps])
        pred_x0 = torch.stack([s.pred_original[modality] for s in steps])
        comparisons += [
            Comparison(f"pred_xt.{suffix}", trajectory, ctx.tensors[f"pred_xt.{suffix}"], atol),
            Comparison(f"pred_x0.{suffix}", pred_x0, ctx.tensors[f"pred_x0.{suffix}"], atol),
            Comparison(f"sample.{suffix}", sample[modality], ctx.tensors[f"sample.{suffix}"], atol),
        ]
    return comparisons


CHECKS = {
    name: check_ddim
    for name in (
        "ddim_image_cfg",
        "ddim_joint_image_text",
        "ddim_joint_video_audio",
        "ddim_audio_two_conditions",
    )
}
