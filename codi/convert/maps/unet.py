"""Specs of the image/video and audio UNets and of their connectors.

Official block contents (video architecture wraps each ResBlock as `[ResBlock, temporal]`):
`N.0` stem conv or `N.0.op` downsample; `N.0[.0]` ResBlock; `N.0.1` temporal; `N.1` transformer;
`N.1.conv`/`N.2.conv` upsample. Ours: `input_blocks.N.{conv,resnet,temporal,attention,downsample,
upsample}` (see codi.models.unet_2d).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from codi.convert.spec import ComponentSpec, TensorMap, UnknownKeyError, registered

_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_TEMPORAL = {
    "temporal_attn": "attn",
    "temporal_attn.norm": "attn.norm",
    "temporal_attn.to_q": "attn.to_q",
    "temporal_attn.to_kv": "attn.to_kv",
    "temporal_attn.to_out": "attn.to_out",
    "temporal_rel_pos_bias.net.0.0": "pos_bias.mlp.0",
    "temporal_rel_pos_bias.net.1.0": "pos_bias.mlp.2",
    "temporal_rel_pos_bias.net.2": "pos_bias.mlp.4",
    "ff.proj_in.0": "ff.proj_in",
    "ff.proj_out.0": "ff.norm",
    "ff.proj_out.1": "ff.proj_out",
    "frameshiftblock.out_layers.0": "frame_shift.norm",
    "frameshiftblock.out_layers.2": "frame_shift.conv",
}
_PARAM = r"(weight|bias)"


def _table(key: str, table: dict[str, str]) -> str | None:
    """Rename `<official module>.<param>` through a module-name table (gain `g` -> `weight`)."""
    module, _, param = key.rpartition(".")
    return f"{table[module]}.{'weight' if param == 'g' else param}" if module in table else None


def _block_part(rest: str) -> str | None:
    """Our key inside one UNetBlock for the official key `rest` inside the block.

    `0.0.<res>` / `0.1.<temporal>` (video architecture) and `0.<res>` (audio) cannot collide:
    ResBlock module names never start with a digit.
    """
    if m := re.fullmatch(rf"0\.{_PARAM}", rest):
        return f"conv.{m[1]}"
    if m := re.fullmatch(rf"0\.op\.{_PARAM}", rest):
        return f"downsample.conv.{m[1]}"
    if m := re.fullmatch(rf"[12]\.conv\.{_PARAM}", rest):
        return f"upsample.conv.{m[1]}"
    if m := re.fullmatch(r"0\.1\.(.+)", rest):
        mapped = _table(m[1], _TEMPORAL)
        return f"temporal.{mapped}" if mapped else None
    if m := re.fullmatch(r"0\.(?:0\.)?(.+)", rest):
        mapped = _table(m[1], _RESNET)
        return f"resnet.{mapped}" if mapped else None
    if m := re.fullmatch(r"1\.(.+)", rest):
        return f"attention.{m[1]}"
    return None


def _reshaped(our_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Our ChanLayerNorm stores its gain flat; the official one is [C, 1, 1, 1]."""
    return tensor.reshape(-1) if our_key.endswith("ff.norm.weight") else tensor


def _unet_key(key: str) -> str | None:
    """Our UNet key for an official one (component prefix stripped)."""
    if m := re.fullmatch(rf"time_embed\.([02])\.{_PARAM}", key):
        return f"time_embed.linear_{1 if m[1] == '0' else 2}.{m[2]}"
    if m := re.fullmatch(rf"out\.([02])\.{_PARAM}", key):
        return f"{'conv_norm_out' if m[1] == '0' else 'conv_out'}.{m[2]}"
    if m := re.fullmatch(r"(input_blocks|output_blocks)\.(\d+)\.(.+)", key):
        part = _block_part(m[3])
        return f"{m[1]}.{m[2]}.{part}" if part else None
    if m := re.fullmatch(r"middle_block\.([012])\.(.+)", key):
        block, rest = {"0": ("0", f"0.{m[2]}"), "1": ("0", f"1.{m[2]}"), "2": ("1", f"0.{m[2]}")}[
            m[1]
        ]
        part = _block_part(rest)
        return f"middle_block.{block}.{part}" if part else None
    return None


def _connector_key(key: str) -> str | None:
    """Our connectors key; the last encoder stage is the only later stage with `N.0.weight`."""
    if m := re.fullmatch(rf"connecters_out\.([1-9]\d*)\.([02])\.{_PARAM}", key):
        return f"{'env_norm_out' if m[2] == '0' else 'env_conv_out'}.{m[3]}"
    if m := re.fullmatch(r"connecters_out\.(\d+)\.(.+)", key):
        part = _block_part(m[2])
        return f"env_blocks.{m[1]}.{part}" if part else None
    if m := re.fullmatch(r"(input|output)_block_connecters_in\.(\d+)\.0\.(.+)", key):
        return f"{m[1]}_layers.{m[2]}.{m[3]}"
    return None


def _mapper(rename: Callable[[str], str | None]) -> TensorMap:
    def map_tensor(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        ours = rename(key)
        if ours is None:
            raise UnknownKeyError(key)
        return [(ours, _reshaped(ours, tensor))]

    return map_tensor


_TEMPORAL_FILL = (
    (
        r".*\.temporal\.frame_shift\.conv\.(weight|bias)",
        "zeros",
        "frame-shift conv is zero-initialised",
    ),
    (r".*\.temporal\.frame_shift\.norm\.weight", "ones", "GroupNorm default gain"),
    (r".*\.temporal\.frame_shift\.norm\.bias", "zeros", "GroupNorm default bias"),
    (
        r".*\.temporal\.attn\.to_out\.weight",
        "zeros",
        "temporal attention to_out is zero-initialised",
    ),
    (r".*\.temporal\.attn\.norm\.weight", "ones", "LayerNorm gain starts at ones"),
    (r".*\.temporal\.ff\.norm\.weight", "ones", "ChanLayerNorm gain starts at ones"),
)


def _specs(modality: str) -> list[ComponentSpec]:
    root = f"model.diffusion_model.unet_{modality}."
    name = f"unet_{modality}"
    fill = _TEMPORAL_FILL if modality == "image" else ()
    return [
        ComponentSpec(
            name=name,
            prefixes=(root,),
            **registered(name),
            map_tensor=_mapper(_unet_key),
            fill_missing=fill,
        ),
        ComponentSpec(
            name=f"{name}_connectors",
            prefixes=tuple(
                root + p
                for p in (
                    "connecters_out.",
                    "input_block_connecters_in.",
                    "output_block_connecters_in.",
                )
            ),
            **registered(f"{name}_connectors"),
            map_tensor=_mapper(_connector_key),
            optional=True,
            strip_prefix=root,
        ),
    ]


SPECS: list[ComponentSpec] = _specs("image") + _specs("audio")
