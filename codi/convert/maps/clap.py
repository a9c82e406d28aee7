"""CLAP (`clap.model.*`): LAION-CLAP HTSAT-large audio tower → ClapAudioModelWithProjection."""

from __future__ import annotations

import re

import torch

from codi.convert.spec import ComponentSpec, registered, rename_map

_ENC = "audio_model.audio_encoder"
_BLOCK = r"audio_branch\.layers\.(\d+)\.blocks\.(\d+)\."
_OURS_BLOCK = rf"{_ENC}.layers.\1.blocks.\2."

_rename = rename_map(
    [
        (r"audio_branch\.bn0\.(.+)", rf"{_ENC}.batch_norm.\1"),
        (r"audio_branch\.patch_embed\.(proj|norm)\.(weight|bias)", rf"{_ENC}.patch_embed.\1.\2"),
        (_BLOCK + r"norm1\.(weight|bias)", _OURS_BLOCK + r"layernorm_before.\3"),
        (_BLOCK + r"norm2\.(weight|bias)", _OURS_BLOCK + r"layernorm_after.\3"),
        (_BLOCK + r"attn\.(relative_position_bias_table|relative_position_index)",
         _OURS_BLOCK + r"attention.self.\3"),
        (_BLOCK + r"attn\.proj\.(weight|bias)", _OURS_BLOCK + r"attention.output.dense.\3"),
        (_BLOCK + r"mlp\.fc1\.(weight|bias)", _OURS_BLOCK + r"intermediate.dense.\3"),
        (_BLOCK + r"mlp\.fc2\.(weight|bias)", _OURS_BLOCK + r"output.dense.\3"),
        (r"audio_branch\.layers\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias)",
         rf"{_ENC}.layers.\1.downsample.\2.\3"),
        (r"audio_branch\.norm\.(weight|bias)", rf"{_ENC}.norm.\1"),
        (r"audio_projection\.0\.(weight|bias)", r"audio_projection.linear1.\1"),
        (r"audio_projection\.2\.(weight|bias)", r"audio_projection.linear2.\1"),
    ]
)
_QKV = re.compile(_BLOCK + r"attn\.qkv\.(weight|bias)")


def map_tensor(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Official CLAP key → ours; the fused qkv splits into query/key/value (rows q|k|v)."""
    match = _QKV.fullmatch(key)
    if match is None:
        return _rename(key, tensor)
    layer, block, kind = match.groups()
    prefix = f"{_ENC}.layers.{layer}.blocks.{block}.attention.self"
    return [
        (f"{prefix}.{name}.{kind}", part.clone())
        for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True)
    ]


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        name="clap",
        prefixes=("clap.model.",),
        **registered("clap"),
        map_tensor=map_tensor,
        unused=(
            (r"audio_branch\.layers\.\d+\.blocks\.\d+\.attn_mask",
             "shifted-window attention mask: recomputed from the window geometry at run time"),
            (r"audio_branch\.head\..+", "AudioSet classifier head: unused for embeddings"),
            (r"audio_branch\.tscam_conv\..+",
             "AudioSet classifier (TSCAM) conv: unused for embeddings"),
            (r"audio_transform\..+",
             "audio_transform MLP: a training-time head, unused at inference"),
            (r"audio_branch\.(spectrogram_extractor\.stft\.conv_(real|imag)|logmel_extractor\.melW)"
             r"(\.weight)?",
             "lazily created STFT/mel front end: recomputed by codi.models.clap_features"),
        ),
    )
]
