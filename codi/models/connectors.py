"""Connectors of a 2-D UNet: the environment encoder and the connector cross-attention layers.

A separate component because the released checkpoints do not contain them (reference §2.2,
docs/quirks.md); they
only run in joint generation (codi.models.joint). The environment encoder (official
`connecters_out`) turns this modality's latent into one unit vector [B, 1, Cc]; each connector-in
layer (official `input/output_block_connecters_in`) is a SpatialTransformer that runs after its UNet
block with that vector as context.

Timed environments (not official; `timed_environment=True`): a video or audio environment keeps its
time axis, one unit vector per time step [B, T, Cc], and each connector-in layer lets every latent
position attend to the token of its own time only. One pooled token cannot tell the other outputs
*when* something happens: cross-attention to a single key returns the same vector at every
position.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D
from torch import nn

from codi.models.unet_2d import (
    UNetBlock,
    fold_frames,
    res_block,
    spatial_transformer,
    unfold_frames,
)


def connector_block_indices(
    num_res_blocks: tuple[int, ...], with_connector: tuple[bool, ...]
) -> tuple[list[int], list[int], list[int]]:
    """(input block indices, their levels, output block indices) that carry a connector-in layer.

    Follows the UNet's block numbering: input block 0 is the stem conv, each level adds its
    ResBlocks and (but the last) a downsample; the output side mirrors it with one block more.
    """
    inputs, levels, outputs = [], [], []
    index = 0
    for level, count in enumerate(num_res_blocks):
        for _ in range(count):
            index += 1
            if with_connector[level]:
                inputs.append(index)
                levels.append(level)
        index += level != len(num_res_blocks) - 1
    index = 0
    for level in reversed(range(len(num_res_blocks))):
        for _ in range(num_res_blocks[level] + 1):
            if with_connector[level]:
                outputs.append(index)
            index += 1
    return inputs, levels, outputs


class CoDiConnectors2D(ModelMixin, ConfigMixin):
    """Environment encoder + connector-in transformers of one image/video or audio UNet."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        model_channels: int = 320,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: tuple[int, ...] = (2, 2, 2, 2),
        channel_mult_connector: tuple[int, ...] = (1, 2, 4),
        num_res_blocks_connector: tuple[int, ...] = (1, 1, 1),
        with_connector: tuple[bool, ...] = (True, True, True, False),
        connector_output_channel: int = 1280,
        num_heads: int = 8,
        use_video_architecture: bool = False,
        timed_environment: bool = False,
    ):
        super().__init__()
        mc, video, temb = model_channels, use_video_architecture, 4 * model_channels
        ch = mc // 2
        self.env_blocks = nn.ModuleList([UNetBlock(conv=nn.Conv2d(in_channels, ch, 3, padding=1))])
        for level, mult in enumerate(channel_mult_connector):
            for _ in range(num_res_blocks_connector[level]):
                self.env_blocks.append(res_block(ch, mc * mult, temb, video))
                ch = mc * mult
            if level != len(channel_mult_connector) - 1:
                down = Downsample2D(ch, use_conv=True, out_channels=ch, padding=1, name="op")
                self.env_blocks.append(UNetBlock(downsample=down))
        self.env_norm_out = nn.GroupNorm(32, ch, eps=1e-5)
        self.env_conv_out = nn.Conv2d(ch, connector_output_channel, 3, padding=1)

        inputs, levels, outputs = connector_block_indices(
            tuple(num_res_blocks), tuple(with_connector)
        )
        out_levels = [
            lv for lv in reversed(range(len(num_res_blocks))) for _ in range(num_res_blocks[lv] + 1)
        ]

        def layer(level: int) -> nn.Module:
            return spatial_transformer(
                mc * channel_mult[level], num_heads, connector_output_channel
            )

        self.input_layers = nn.ModuleDict(
            {str(i): layer(lv) for i, lv in zip(inputs, levels, strict=True)}
        )
        self.output_layers = nn.ModuleDict({str(i): layer(out_levels[i]) for i in outputs})
        # The official SpatialTransformer zero-initialises proj_out: fresh connectors are identity.
        for transformer in (*self.input_layers.values(), *self.output_layers.values()):
            nn.init.zeros_(transformer.proj_out.weight)
            nn.init.zeros_(transformer.proj_out.bias)

    def raw_environment(self, sample: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Last encoder stage: [B, Cc, h, w] for images/audio, [B, Cc, T, h, w] for video.

        `emb` [B, temb] is the UNet's time embedding of this modality's timestep.
        """
        frames = sample.shape[2] if sample.ndim == 5 else None
        h = sample
        if frames is not None:
            h, emb = fold_frames(sample), emb.repeat_interleave(frames, 0)
        for block in self.env_blocks:
            h = block(h, emb, None, frames)
        h = self.env_conv_out(F.silu(self.env_norm_out(h)))
        return unfold_frames(h, frames) if frames is not None else h

    def environment(self, sample: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Environment vector [B, 1, Cc]: the encoder output averaged over every non-channel axis
        and L2-normalised."""
        raw = self.raw_environment(sample, emb)
        pooled = raw.mean(dim=tuple(range(2, raw.ndim)))
        return (pooled / pooled.norm(dim=-1, keepdim=True))[:, None]

    def environment_sequence(self, sample: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Timed environment [B, T, Cc] of a video [B,C,T,H,W] or audio [B,C,T,F] latent: the
        encoder output averaged over every axis but channels and time (axis 2), less its mean
        over time, each time step's vector L2-normalised.

        Less the mean over time: the averaged encoder output is nearly the same vector for every
        scene (docs/nano.md, Stage 2), so what tells clips and moments apart is how it changes.
        """
        raw = self.raw_environment(sample, emb)
        tokens = raw.mean(dim=tuple(range(3, raw.ndim))).transpose(1, 2)
        tokens = tokens - tokens.mean(dim=1, keepdim=True)
        return tokens / tokens.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    def _run_layer(
        self, layers: nn.ModuleDict, index: int, h: torch.Tensor, env: torch.Tensor
    ) -> torch.Tensor:
        key = str(index)
        if key not in layers:
            return h
        if env.shape[1] == 1:
            return layers[key](h, encoder_hidden_states=env, return_dict=False)[0]
        with _aligned_cross_attention(layers[key]):
            return layers[key](h, encoder_hidden_states=per_position_tokens(env, h),
                               return_dict=False)[0]

    def after_input_block(
        self, index: int, h: torch.Tensor, environment: torch.Tensor
    ) -> torch.Tensor:
        """Connector-in layer of UNet input block `index` (identity where there is none)."""
        return self._run_layer(self.input_layers, index, h, environment)

    def after_output_block(
        self, index: int, h: torch.Tensor, environment: torch.Tensor
    ) -> torch.Tensor:
        """Connector-in layer of UNet output block `index` (identity where there is none)."""
        return self._run_layer(self.output_layers, index, h, environment)


def per_position_tokens(tokens: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """[B, H*W, Cc]: for each position of `h` [B, C, H, W] (row-major, as the transformer flattens
    it), the token of `tokens` [B, T, Cc] whose stretch of time (axis H) holds that row."""
    rows, columns = h.shape[2], h.shape[3]
    index = torch.div(torch.arange(rows, device=tokens.device) * tokens.shape[1], rows,
                      rounding_mode="floor")
    return tokens[:, index].repeat_interleave(columns, dim=1)


class AlignedContextProcessor:
    """Cross-attention in which query i sees context token i only. Softmax over one key is 1, so
    the output is to_out(to_v(context_i)); with a single context token this is exactly ordinary
    cross-attention."""

    def __call__(self, attn, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        out = attn.to_out[1](attn.to_out[0](attn.to_v(encoder_hidden_states)))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


@contextmanager
def _aligned_cross_attention(layer: nn.Module):
    """Run `layer`'s cross-attentions with AlignedContextProcessor, restoring theirs after."""
    attentions = [block.attn2 for block in layer.transformer_blocks]
    saved = [attention.processor for attention in attentions]
    for attention in attentions:
        attention.processor = AlignedContextProcessor()
    try:
        yield
    finally:
        for attention, processor in zip(attentions, saved, strict=True):
            attention.processor = processor
