"""CoDi's CLIP condition encoders: text, and vision with temporal layers for video.

Both return CoDi's conditioning token `[B, 1, D]`: the pooled state, projected, L2-normalised.
The text tower is transformers' CLIP unchanged. The vision tower is transformers' CLIP with one
temporal layer per encoder layer (placed after the spatial self-attention residual, before the
MLP), active only for video `[B, F, 3, H, W]`; the video path averages frames after the encoder.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)
from transformers.models.clip.modeling_clip import CLIPEncoderLayer, CLIPVisionModelOutput

from codi.models.clip_temporal import CLIPTemporalBlock

#: Token sequence length of CLIP's text tower (padded with the end token, 49407).
CLIP_MAX_LENGTH = 77


def _l2_token(embeds: torch.Tensor) -> torch.Tensor:
    """`[B, D]` → unit-norm `[B, 1, D]`: CoDi's single conditioning token."""
    return (embeds / embeds.norm(dim=-1, keepdim=True)).unsqueeze(1)


class CoDiCLIPTextModel(CLIPTextModelWithProjection):
    """transformers' CLIP text tower + projection; `encode` gives CoDi's text condition."""

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids `[B, 77]` → unit-norm `[B, 1, D]`.

        CoDi pools at `argmax(input_ids)` (the first end token, the largest id), whatever the
        config's `eos_token_id` says; it passes no attention mask (causal masking only).
        """
        hidden = self.text_model(input_ids=input_ids).last_hidden_state
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), input_ids.argmax(-1)]
        return _l2_token(self.text_projection(pooled))


class CoDiCLIPVisionLayer(CLIPEncoderLayer):
    """transformers' CLIP encoder layer with CoDi's temporal block between attention and MLP."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__(config)
        self.temporal_self_attn = CLIPTemporalBlock(config.hidden_size, config.num_attention_heads)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """`[B·F, L, C]` → same; the temporal block runs only when `num_frames` is given."""
        residual = hidden_states
        hidden_states, _ = self.self_attn(
            hidden_states=self.layer_norm1(hidden_states), attention_mask=attention_mask, **kwargs
        )
        hidden_states = residual + hidden_states
        if num_frames is not None:
            hidden_states = self.temporal_self_attn(hidden_states, num_frames)
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class CoDiCLIPVisionModel(CLIPVisionModelWithProjection):
    """transformers' CLIP vision tower + projection, with CoDi's temporal layers for video."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__(config)
        self.vision_model.encoder.layers = torch.nn.ModuleList(
            CoDiCLIPVisionLayer(config) for _ in range(config.num_hidden_layers)
        )
        self.post_init()

    def forward(self, pixel_values: torch.Tensor) -> CLIPVisionModelOutput:
        """Images `[B, 3, H, W]` or videos `[B, F, 3, H, W]` (CLIP-preprocessed pixels).

        Video frames run through the spatial layers folded into the batch and through the
        temporal layers per token; the encoder output is averaged over frames before pooling.
        `image_embeds` is the projection of the post-LayerNorm [CLS] state (not normalised).
        """
        num_frames = pixel_values.shape[1] if pixel_values.ndim == 5 else None
        if num_frames is not None:
            pixel_values = pixel_values.flatten(0, 1)
        tower = self.vision_model
        hidden = tower.pre_layrnorm(tower.embeddings(pixel_values))
        for layer in tower.encoder.layers:
            hidden = layer(hidden, None, num_frames=num_frames)
        if num_frames is not None:
            hidden = hidden.unflatten(0, (-1, num_frames)).mean(dim=1)
        pooled = tower.post_layernorm(hidden[:, 0])
        return CLIPVisionModelOutput(
            image_embeds=self.visual_projection(pooled), last_hidden_state=hidden
        )

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels of images `[B, 3, H, W]` or videos `[B, F, 3, H, W]` → `[B, 1, D]`, unit norm."""
        return _l2_token(self(pixel_values).image_embeds)


def text_config_of(clip_config: dict[str, Any]) -> CLIPTextConfig:
    """The text tower config from a Hugging Face CLIP `config.json` dict."""
    return CLIPTextConfig(**clip_config["text_config"])


def vision_config_of(clip_config: dict[str, Any]) -> CLIPVisionConfig:
    """The vision tower config from a Hugging Face CLIP `config.json` dict."""
    return CLIPVisionConfig(**clip_config["vision_config"])


def tokenize(tokenizer: CLIPTokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids `[B, 77]`, padded with the end token as CoDi does."""
    return tokenizer(
        texts, padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True,
        return_tensors="pt",
    ).input_ids
