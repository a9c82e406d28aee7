"""Specs of the text UNet ("openai_unet_0dmd") and its connectors.

Official keys (after `model.diffusion_model.unet_text.`) follow the OpenAI/LDM block indices;
ours are grouped by level (diffusers style). Index arithmetic assumes the layout every released
config has: 2 FC blocks per UNet level and 3 one-block levels in the environment encoder (`build`
refuses anything else). The official 1×1 convs become Linear weights:
`[out, in, 1, 1]` → `[out, in]`.
"""

from __future__ import annotations

import re

import torch

from codi.convert.spec import ComponentSpec, UnknownKeyError, registered
from codi.models.official_config import OfficialConfig

ROOT = "model.diffusion_model.unet_text."
CONNECTOR_GROUPS = ("connecters_out.", "input_block_connecters_in.", "output_block_connecters_in.")
BLOCKS_PER_LEVEL = 2  # FC blocks per UNet encoder level (decoder: one more)
ENV_LEVELS = 3  # environment-encoder levels, one FC block each

Mapped = list[tuple[str, torch.Tensor]]

_FC_PARTS = {
    "in_layers.0": "norm1",
    "in_layers.2": "fc1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "fc2",
    "skip_connection": "fc_shortcut",
}


def _as_linear(tensor: torch.Tensor) -> torch.Tensor:
    """A 1×1 conv weight `[out, in, 1, 1]` as a Linear weight `[out, in]` (other tensors as is)."""
    return tensor.reshape(tensor.shape[0], -1) if tensor.dim() == 4 else tensor


def _fc_block(rest: str, ours: str, tensor: torch.Tensor) -> Mapped:
    """An FCBlock_MultiDim tensor (`in_layers.2.weight`, …) under our `ours.` prefix."""
    match = re.fullmatch(
        r"(in_layers\.[02]|emb_layers\.1|out_layers\.[03]|skip_connection)\.(weight|bias)", rest
    )
    if match is None:
        raise UnknownKeyError(rest)
    return [(f"{ours}.{_FC_PARTS[match[1]]}.{match[2]}", _as_linear(tensor))]


def _transformer(rest: str, ours: str, tensor: torch.Tensor) -> Mapped:
    """A SpatialTransformer tensor: diffusers Transformer2DModel names, linear projections."""
    if not re.fullmatch(r"(norm|proj_in|proj_out)\.(weight|bias)|transformer_blocks\.0\..+", rest):
        raise UnknownKeyError(rest)
    return [(f"{ours}.{rest}", _as_linear(tensor))]


def _parameter(rest: str, ours: str, tensor: torch.Tensor) -> Mapped:
    """A plain Linear/GroupNorm `weight` or `bias`."""
    if rest not in ("weight", "bias"):
        raise UnknownKeyError(rest)
    return [(f"{ours}.{rest}", tensor)]


def map_unet_text(key: str, tensor: torch.Tensor) -> Mapped:
    """Official text-UNet key (root stripped) → our `CoDiTextUNetModel` key."""
    stride = BLOCKS_PER_LEVEL + 1
    if match := re.fullmatch(r"time_embed\.([02])\.(weight|bias)", key):
        return [(f"time_embed.linear_{1 if match[1] == '0' else 2}.{match[2]}", tensor)]
    if match := re.fullmatch(r"out\.([02])\.(.+)", key):
        return _parameter(match[2], "norm_out" if match[1] == "0" else "proj_out", tensor)
    if match := re.fullmatch(r"input_blocks\.0\.0\.(.+)", key):
        return _parameter(match[1], "proj_in", tensor)
    if match := re.fullmatch(r"input_blocks\.(\d+)\.([01])\.(.+)", key):
        level, j = divmod(int(match[1]) - 1, stride)
        block = f"down_blocks.{level}"
        if j == BLOCKS_PER_LEVEL:
            return _parameter(match[3], f"{block}.downsamplers.0", tensor)
        if match[2] == "0":
            return _fc_block(match[3], f"{block}.resnets.{j}", tensor)
        return _transformer(match[3], f"{block}.attentions.{j}", tensor)
    if match := re.fullmatch(r"middle_block\.([012])\.(.+)", key):
        if match[1] == "1":
            return _transformer(match[2], "mid_block.attentions.0", tensor)
        return _fc_block(match[2], f"mid_block.resnets.{int(match[1]) // 2}", tensor)
    if match := re.fullmatch(r"output_blocks\.(\d+)\.([012])\.(.+)", key):
        level, j = divmod(int(match[1]), stride)
        block = f"up_blocks.{level}"
        if match[2] == "0":
            return _fc_block(match[3], f"{block}.resnets.{j}", tensor)
        if match[3] in ("weight", "bias"):  # a bare Linear after the FC block: the "upsample"
            return _parameter(match[3], f"{block}.upsamplers.0", tensor)
        return _transformer(match[3], f"{block}.attentions.{j}", tensor)
    raise UnknownKeyError(key)


def map_connectors(key: str, tensor: torch.Tensor) -> Mapped:
    """Official connector key (`connecters_out.…`, `*_block_connecters_in.…`) → ours."""
    stride = BLOCKS_PER_LEVEL + 1
    if match := re.fullmatch(r"connecters_out\.(\d+)\.(\d)\.(.+)", key):
        stage, part, rest = int(match[1]), match[2], match[3]
        if stage == 0 and part == "0":
            return _parameter(rest, "env_proj_in", tensor)
        if stage == 2 * ENV_LEVELS and part in ("0", "2"):
            return _parameter(rest, "env_norm_out" if part == "0" else "env_proj_out", tensor)
        if 0 < stage < 2 * ENV_LEVELS and part == "0":
            level, is_down = divmod(stage - 1, 2)
            if is_down:
                return _parameter(rest, f"env_down_blocks.{level}.downsamplers.0", tensor)
            return _fc_block(rest, f"env_down_blocks.{level}.resnets.0", tensor)
        raise UnknownKeyError(key)
    if match := re.fullmatch(r"input_block_connecters_in\.(\d+)\.0\.(.+)", key):
        level, j = divmod(int(match[1]) - 1, stride)
        return _transformer(match[2], f"down_connectors.{level}.{j}", tensor)
    if match := re.fullmatch(r"output_block_connecters_in\.(\d+)\.0\.(.+)", key):
        level, j = divmod(int(match[1]), stride)
        return _transformer(match[2], f"up_connectors.{level}.{j}", tensor)
    raise UnknownKeyError(key)


def _checked_args(official: OfficialConfig) -> dict:
    args = official.unet_args("text")
    if list(args["num_noattn_blocks"]) != [BLOCKS_PER_LEVEL] * len(args["channel_mult"]):
        raise ValueError(f"text UNet key map expects {BLOCKS_PER_LEVEL} blocks per level")
    if list(args["num_noattn_blocks_connector"]) != [1] * ENV_LEVELS:
        raise ValueError(f"text connector key map expects {ENV_LEVELS} one-block levels")
    return args


def _checked(name: str) -> dict:
    """The registry's class and build of `name`, the build refusing layouts this map cannot read."""
    fields = registered(name)
    build = fields["build"]

    def checked_build(official: OfficialConfig):
        _checked_args(official)
        return build(official)

    return {**fields, "build": checked_build}


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        name="unet_text",
        prefixes=(ROOT,),
        **_checked("unet_text"),
        map_tensor=map_unet_text,
    ),
    ComponentSpec(
        name="unet_text_connectors",
        prefixes=tuple(ROOT + group for group in CONNECTOR_GROUPS),
        **_checked("unet_text_connectors"),
        map_tensor=map_connectors,
        optional=True,
        strip_prefix=ROOT,
    ),
]
