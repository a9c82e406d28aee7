"""CLIP (`clip.model.*`, a CLIPModel with temporal vision layers) → two components.

`clip_text`: transformers CLIPTextModelWithProjection (`text_model.*`, `text_projection`), which
also owns the CLIPModel root (`logit_scale`, unused: CoDi never scores image-text pairs).
`clip_vision`: CLIPVisionModelWithProjection + temporal layers (`vision_model.*`,
`visual_projection`). Our keys are the official ones; only unused tensors are dropped.
"""

from __future__ import annotations

import re

import torch

from codi.convert.spec import ComponentSpec, UnknownKeyError, registered, rename_map

_LAYER = (
    r"encoder\.layers\.\d+\.(?:self_attn\.(?:[qkv]|out)_proj|layer_norm[12]|mlp\.fc[12])"
    r"\.(?:weight|bias)"
)
_TEMPORAL = (
    r"encoder\.layers\.\d+\.temporal_self_attn\.(?:"
    r"temporal_attn\.(?:norm\.g|to_q\.weight|to_kv\.weight|to_out\.weight)"
    r"|temporal_rel_pos_bias\.net\.(?:0\.0|1\.0|2)\.(?:weight|bias)"
    r"|ff\.(?:proj_in\.0\.weight|proj_out\.0\.g|proj_out\.1\.weight))"
)
_POSITION_IDS = "regenerated: transformers keeps CLIP position_ids as a non-persistent buffer"

map_text = rename_map(
    [
        (
            rf"(text_model\.(?:embeddings\.(?:token|position)_embedding\.weight|{_LAYER}"
            r"|final_layer_norm\.(?:weight|bias)))",
            r"\1",
        ),
        (r"text_projection\.weight", "text_projection.weight"),
    ]
)

_VISION_KEY = re.compile(
    rf"embeddings\.(?:class_embedding|patch_embedding\.weight|position_embedding\.weight)"
    rf"|(?:pre_layrnorm|post_layernorm)\.(?:weight|bias)|{_LAYER}|{_TEMPORAL}"
)


def map_vision(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Keys under `vision_model.` keep their name; `visual_projection.` leaves a bare `weight`."""
    if key == "weight":
        return [("visual_projection.weight", tensor)]
    if _VISION_KEY.fullmatch(key):
        return [(f"vision_model.{key}", tensor)]
    raise UnknownKeyError(key)


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        name="clip_text",
        prefixes=("clip.model.",),
        **registered("clip_text"),
        map_tensor=map_text,
        unused=(
            (r"logit_scale", "CLIP's contrastive temperature: CoDi never scores pairs"),
            (r"text_model\.embeddings\.position_ids", _POSITION_IDS),
        ),
    ),
    ComponentSpec(
        name="clip_vision",
        prefixes=("clip.model.vision_model.", "clip.model.visual_projection."),
        **registered("clip_vision"),
        map_tensor=map_vision,
        unused=(
            (r"embeddings\.position_ids", _POSITION_IDS),
            (
                r"encoder\.layers\.\d+\.temporal_self_attn\.temporal_attn\."
                r"(?:pos_embeds|frame_rate_embeds)",
                "never added: CoDi's CLIP calls its temporal layers without a framerate",
            ),
        ),
    ),
]
