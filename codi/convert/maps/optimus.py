"""Specs of the Optimus text VAE: `optimus_encoder` (BERT) and `optimus_decoder` (GPT-2)."""

from __future__ import annotations

import re

import torch

from codi.convert.spec import ComponentSpec, UnknownKeyError, registered, rename_map

_GPT2_PART = r"(?:wpe|ln_f|h\.\d+\.(?:ln_1|ln_2|attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj))"
_map_decoder_renamed = rename_map(
    [
        (r"transformer\.linear\.weight", "latent_memory.weight"),
        (r"transformer\.linear_emb\.weight", "latent_embedding.weight"),
        (rf"transformer\.{_GPT2_PART}\.(?:weight|bias)", r"\g<0>"),
    ]
)


def map_decoder(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Official GPT-2 keys → ours; `wte` also fills the tied `lm_head` (a clone)."""
    if key == "transformer.wte.weight":
        return [(key, tensor), ("lm_head.weight", tensor.clone())]
    return _map_decoder_renamed(key, tensor)


def map_encoder(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Official keys are BertModel's (plus `linear`); ours nest BertModel under `bert.`."""
    if key == "linear.weight":
        return [(key, tensor)]
    if re.match(r"(embeddings|encoder|pooler)\.", key):
        return [(f"bert.{key}", tensor)]
    raise UnknownKeyError(key)


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        name="optimus_encoder",
        prefixes=("optimus.encoder.",),
        **registered("optimus_encoder"),
        map_tensor=map_encoder,
        unused=(
            (r"embeddings\.position_ids",
             "position-id buffer that older transformers saved; regenerated"),
        ),
    ),
    ComponentSpec(
        name="optimus_decoder",
        prefixes=("optimus.decoder.",),
        **registered("optimus_decoder"),
        map_tensor=map_decoder,
        unused=(
            (r"transformer\.h\.\d+\.attn\.(bias|masked_bias)",
             "GPT-2 causal-mask buffers: transformers regenerates the mask"),
            (r"lm_head\.weight",
             "tied to transformer.wte.weight (one Parameter officially); filled from wte"),
        ),
    ),
]
