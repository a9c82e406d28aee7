"""CoDi's 2-D UNet (official `UNetModel2D`): the image/video UNet and the audio UNet.

Without video layers this is the SD-1.x UNet, built from diffusers blocks (ResnetBlock2D,
Transformer2DModel, Downsample2D, Upsample2D, Timesteps + TimestepEmbedding). With
`use_video_architecture`, a `SpatioTemporalAttention` follows every ResBlock; video latents
[B, C, T, H, W] run every spatial layer with the frames folded into the batch.

Blocks keep the official numbering (`input_blocks.i`, `middle_block`, `output_blocks.i`) so that
the connectors (codi.models.connectors) and the parity hooks can address them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from codi.models.temporal import SpatioTemporalAttention


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] -> [B*T, C, H, W] (frames of one sample are consecutive)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def unfold_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[B*T, C, H, W] -> [B, C, T, H, W]."""
    bt, c, h, w = x.shape
    return x.view(bt // frames, frames, c, h, w).permute(0, 2, 1, 3, 4)


def resnet(in_channels: int, out_channels: int, temb_channels: int) -> ResnetBlock2D:
    """The LDM ResBlock: GroupNorm(32, eps 1e-5), SiLU, conv; time bias; no scale-shift."""
    return ResnetBlock2D(
        in_channels=in_channels, out_channels=out_channels, temb_channels=temb_channels, eps=1e-5
    )


def spatial_transformer(channels: int, heads: int, context_dim: int) -> Transformer2DModel:
    """The SD-1.x SpatialTransformer: GN eps 1e-6, conv proj_in/out, one GEGLU transformer block."""
    return Transformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=channels // heads,
        in_channels=channels,
        cross_attention_dim=context_dim,
    )


def frame_environments(environment: torch.Tensor, frames: int) -> torch.Tensor:
    """[B*frames, 1, Cc] for frames-folded blocks: a pooled environment [B,1,Cc] repeated for
    every frame, or a timed one [B,frames,Cc] split into one token per frame."""
    if environment.shape[1] == 1:
        return environment.repeat_interleave(frames, 0)
    if environment.shape[1] != frames:
        raise ValueError(f"a timed environment of {environment.shape[1]} steps for {frames} frames")
    return environment.reshape(-1, 1, environment.shape[-1])


class UNetBlock(nn.Module):
    """One official `TimestepEmbedSequential`: some of conv, resnet (+ temporal), attention,
    downsample/upsample, run in that order on a frames-folded activation."""

    def __init__(
        self,
        conv: nn.Module | None = None,
        resnet: ResnetBlock2D | None = None,
        temporal: SpatioTemporalAttention | None = None,
        attention: Transformer2DModel | None = None,
        downsample: Downsample2D | None = None,
        upsample: Upsample2D | None = None,
    ):
        super().__init__()
        self.conv = conv
        self.resnet = resnet
        self.temporal = temporal
        self.attention = attention
        self.downsample = downsample
        self.upsample = upsample

    def forward(
        self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None, frames: int | None
    ) -> torch.Tensor:
        """h [B*T, C, H, W]; emb/context repeated per frame; frames=None for images."""
        if self.conv is not None:
            h = self.conv(h)
        if self.resnet is not None:
            h = self.resnet(h, emb)
        if self.temporal is not None and frames is not None:
            h = fold_frames(self.temporal(unfold_frames(h, frames)))
        if self.attention is not None:
            h = self.attention(h, encoder_hidden_states=context, return_dict=False)[0]
        if self.downsample is not None:
            h = self.downsample(h)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


def res_block(c_in: int, c_out: int, temb: int, video: bool, **extra: nn.Module) -> UNetBlock:
    """A ResBlock (+ temporal layer when `video`) plus any `extra` UNetBlock parts."""
    temporal = SpatioTemporalAttention(c_out) if video else None
    return UNetBlock(resnet=resnet(c_in, c_out, temb), temporal=temporal, **extra)


class CoDiUNet2DModel(ModelMixin, ConfigMixin):
    """The official 2-D UNet (image/video: 4 channels with video layers; audio: 8 channels).

    forward(sample, timestep, context, connectors=None, environment=None) follows the interface
    in codi.models.joint.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        model_channels: int = 320,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: tuple[int, ...] = (2, 2, 2, 2),
        with_attn: tuple[bool, ...] = (True, True, True, False),
        num_heads: int = 8,
        context_dim: int = 768,
        use_video_architecture: bool = False,
    ):
        super().__init__()
        mc, video = model_channels, use_video_architecture
        temb = 4 * mc
        self.time_proj = Timesteps(mc, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(mc, temb)

        def attention(ch: int, level: int) -> dict[str, nn.Module]:
            return (
                {"attention": spatial_transformer(ch, num_heads, context_dim)}
                if with_attn[level]
                else {}
            )

        self.input_blocks = nn.ModuleList(
            [UNetBlock(conv=nn.Conv2d(in_channels, mc, 3, padding=1))]
        )
        skips, ch = [mc], mc
        levels = len(channel_mult)
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks[level]):
                self.input_blocks.append(
                    res_block(ch, mc * mult, temb, video, **attention(mc * mult, level))
                )
                ch = mc * mult
                skips.append(ch)
            if level != levels - 1:
                down = Downsample2D(ch, use_conv=True, out_channels=ch, padding=1, name="op")
                self.input_blocks.append(UNetBlock(downsample=down))
                skips.append(ch)

        mid_attn = spatial_transformer(ch, num_heads, context_dim)
        self.middle_block = nn.ModuleList(
            [res_block(ch, ch, temb, video, attention=mid_attn), res_block(ch, ch, temb, video)]
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks[level] + 1):
                extra = attention(mc * mult, level)
                if level and i == num_res_blocks[level]:
                    extra["upsample"] = Upsample2D(mc * mult, use_conv=True, out_channels=mc * mult)
                self.output_blocks.append(
                    res_block(ch + skips.pop(), mc * mult, temb, video, **extra)
                )
                ch = mc * mult

        self.conv_norm_out = nn.GroupNorm(32, ch, eps=1e-5)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def time_embedding(self, timestep: torch.Tensor | int, dtype: torch.dtype) -> torch.Tensor:
        """[N, 4*model_channels] embedding of N timesteps (for the blocks and the connectors)."""
        timestep = torch.as_tensor(timestep, device=self.device).reshape(-1)
        return self.time_embed(self.time_proj(timestep).to(dtype))

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        context: torch.Tensor,
        connectors: nn.Module | None = None,
        environment: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """eps for `sample` [B,C,H,W] (image/audio) or [B,C,T,H,W] (video); context [B,1,D].

        With `connectors` (this modality's CoDiConnectors2D) and `environment` [B,1,Cc], every
        connector-in transformer runs after its block with `environment` as context. A timed
        environment [B,T,Cc] gives a video's frame t the token t (T = frames) and an audio
        latent's positions the token of their time (axis 2).
        """
        frames = sample.shape[2] if sample.ndim == 5 else None
        emb = self.time_embedding(timestep, sample.dtype).expand(sample.shape[0], -1)
        h = sample
        if frames is not None:
            h = fold_frames(sample)
            emb, context = (z.repeat_interleave(frames, 0) for z in (emb, context))
            if environment is not None:
                environment = frame_environments(environment, frames)
        run_connectors = connectors is not None and environment is not None

        skips = []
        for i, block in enumerate(self.input_blocks):
            h = block(h, emb, context, frames)
            if run_connectors:
                h = connectors.after_input_block(i, h, environment)
            skips.append(h)
        for block in self.middle_block:
            h = block(h, emb, context, frames)
        # Official quirk (verified on the fixtures): output block 0 gets the middle-block output
        # as its skip, in place of input block 11's output.
        skips[-1] = h
        for i, block in enumerate(self.output_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, frames)
            if run_connectors:
                h = connectors.after_output_block(i, h, environment)
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        return unfold_frames(h, frames) if frames is not None else h
