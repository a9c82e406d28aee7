"""The SD autoencoder (`autokl.*`) → diffusers `AutoencoderKL`, and the LDM-VAE key map it shares
with the AudioLDM autoencoder."""

from __future__ import annotations

import re

import torch

from codi.convert.spec import ComponentSpec, TensorMap, UnknownKeyError, registered
from codi.models.official_config import FULL_CODI_CONFIG

_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_PLAIN = re.compile(r"(?:(?:encoder|decoder)\.conv_(?:in|out)|(?:post_)?quant_conv)\.(weight|bias)")
_NORM_OUT = re.compile(r"(encoder|decoder)\.norm_out\.(weight|bias)")
_PARAM = r"(weight|bias)"
_RESNET = rf"(norm1|conv1|norm2|conv2|nin_shortcut)\.{_PARAM}"
_DOWN = re.compile(rf"encoder\.down\.(\d+)\.(?:block\.(\d+)\.{_RESNET}|downsample\.conv\.{_PARAM})")
_UP = re.compile(rf"decoder\.up\.(\d+)\.(?:block\.(\d+)\.{_RESNET}|upsample\.conv\.{_PARAM})")
_MID_BLOCK = re.compile(rf"(encoder|decoder)\.mid\.block_([12])\.{_RESNET}")
_MID_ATTN = re.compile(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)")


def _resnet_param(layer: str, param: str) -> str:
    return f"{'conv_shortcut' if layer == 'nin_shortcut' else layer}.{param}"


def ldm_vae_map(levels: int) -> TensorMap:
    """Per-key map from the LDM kl-autoencoder layout to diffusers `AutoencoderKL`.

    `levels` is len(ch_mult): the LDM decoder numbers its levels from the finest up
    (`decoder.up.{l}`), diffusers from the coarsest (`decoder.up_blocks.{levels-1-l}`).
    The mid-attention 1x1 convs become Linear weights (reshaped, so it works on meta tensors).
    """

    def map_tensor(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        if _PLAIN.fullmatch(key):
            return [(key, tensor)]
        if m := _NORM_OUT.fullmatch(key):
            return [(f"{m[1]}.conv_norm_out.{m[2]}", tensor)]
        if m := _DOWN.fullmatch(key):
            if m[2] is None:
                return [(f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[5]}", tensor)]
            resnet = _resnet_param(m[3], m[4])
            return [(f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{resnet}", tensor)]
        if m := _UP.fullmatch(key):
            block = levels - 1 - int(m[1])
            if block < 0:
                raise UnknownKeyError(key)
            if m[2] is None:
                return [(f"decoder.up_blocks.{block}.upsamplers.0.conv.{m[5]}", tensor)]
            resnet = _resnet_param(m[3], m[4])
            return [(f"decoder.up_blocks.{block}.resnets.{m[2]}.{resnet}", tensor)]
        if m := _MID_BLOCK.fullmatch(key):
            index = int(m[2]) - 1
            return [(f"{m[1]}.mid_block.resnets.{index}.{_resnet_param(m[3], m[4])}", tensor)]
        if m := _MID_ATTN.fullmatch(key):
            if m[2] != "norm" and m[3] == "weight":
                tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
            return [(f"{m[1]}.mid_block.attentions.0.{_ATTN[m[2]]}.{m[3]}", tensor)]
        raise UnknownKeyError(key)

    return map_tensor


#: kl-f8 has 4 levels; the fixture models keep the official ch_mult length.
IMAGE_VAE_LEVELS = len(FULL_CODI_CONFIG["autokl_cfg"]["args"]["ddconfig"]["ch_mult"])

SPECS: list[ComponentSpec] = [
    ComponentSpec(
        name="vae_image",
        prefixes=("autokl.",),
        **registered("vae_image"),
        map_tensor=ldm_vae_map(IMAGE_VAE_LEVELS),
    )
]
