"""The text UNet of CoDi ("openai_unet_0dmd") and its joint-generation connectors.

The text latent is a 768-d vector. Inside the UNet every activation is `[B, C, S, 1]`: C channels
times S "tokens" (`second_dim`). Dense layers see the row-major flattening `[B, C·S]` (index
`c·S + s`); the transformers attend over the S tokens. Every dense layer is an `nn.Linear` (the
official 1×1 convs on `[B, C·S, 1, 1]` compute the same), so the whole network quantises with
bitsandbytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

GROUPS = 32
FC_NORM_EPS = 1e-5


def spatial_transformer(
    channels: int, num_heads: int, cross_attention_dim: int | None
) -> Transformer2DModel:
    """CoDi's SpatialTransformer: GroupNorm(32, eps 1e-6), projection, one self/cross/GEGLU block.

    The official 1×1-conv projections become `nn.Linear` (`use_linear_projection`): same maths.
    """
    return Transformer2DModel(
        num_attention_heads=num_heads,
        attention_head_dim=channels // num_heads,
        in_channels=channels,
        norm_num_groups=GROUPS,
        cross_attention_dim=cross_attention_dim,
        use_linear_projection=True,
    )


def attend(transformer: Transformer2DModel, h: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Run a spatial transformer on `[B, C, S, 1]` with `context` `[B, N, D]`."""
    return transformer(h, encoder_hidden_states=context, return_dict=False)[0]


def dense(linear: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """CoDi's shape-preserving Linear_MultiDim (down/upsampler) on `[B, C, S, 1]`."""
    return linear(h.flatten(1)).view_as(h)


class FCBlock(nn.Module):
    """CoDi's FCBlock_MultiDim: a ResBlock on the flattened `[B, C·S]` features.

    Own module because CoDi normalises over all C·S features (GroupNorm(32, C·S)) and mixes them
    densely; a diffusers ResnetBlock2D would use 3×3 convs and C-channel norms.
    """

    def __init__(self, in_features: int, out_features: int, temb_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, in_features, eps=FC_NORM_EPS)
        self.fc1 = nn.Linear(in_features, out_features)
        self.time_emb_proj = nn.Linear(temb_channels, out_features)
        self.norm2 = nn.GroupNorm(GROUPS, out_features, eps=FC_NORM_EPS)
        self.fc2 = nn.Linear(out_features, out_features)
        self.fc_shortcut = (
            nn.Linear(in_features, out_features) if in_features != out_features else None
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """`x` `[B, C_in, S, 1]`, `emb` `[B, T]` → `[B, C_out, S, 1]`."""
        batch, _, tokens, width = x.shape
        flat = x.flatten(1)
        h = self.fc1(F.silu(self.norm1(flat)))
        h = h + self.time_emb_proj(F.silu(emb)).to(h.dtype)
        h = self.fc2(F.silu(self.norm2(h)))
        skip = flat if self.fc_shortcut is None else self.fc_shortcut(flat)
        return (skip + h).view(batch, -1, tokens, width)


class TextDownBlock(nn.Module):
    """One encoder level: FC blocks (+ transformers), then an optional dense "downsample"."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        tokens: int,
        temb_channels: int,
        num_layers: int,
        with_attention: bool,
        add_downsample: bool,
        num_heads: int = 1,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            FCBlock(
                (in_channels if i == 0 else out_channels) * tokens,
                out_channels * tokens,
                temb_channels,
            )
            for i in range(num_layers)
        )
        self.attentions = nn.ModuleList(
            spatial_transformer(out_channels, num_heads, context_dim)
            for _ in range(num_layers if with_attention else 0)
        )
        width = out_channels * tokens
        self.downsamplers = nn.ModuleList([nn.Linear(width, width)] if add_downsample else [])

    def forward(
        self,
        h: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None = None,
        connectors: nn.ModuleList | None = None,
        environment: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The level's output and every intermediate output (the decoder's skips)."""
        skips = []
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, emb)
            if self.attentions:
                h = attend(self.attentions[i], h, context)
            if connectors:
                h = attend(connectors[i], h, environment)
            skips.append(h)
        for downsampler in self.downsamplers:
            h = dense(downsampler, h)
            skips.append(h)
        return h, skips


class TextUpBlock(nn.Module):
    """One decoder level: skip-concat FC blocks (+ transformers), optional dense "upsample"."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: list[int],
        out_channels: int,
        tokens: int,
        temb_channels: int,
        with_attention: bool,
        add_upsample: bool,
        num_heads: int,
        context_dim: int,
    ) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * (len(skip_channels) - 1)
        self.resnets = nn.ModuleList(
            FCBlock((width + skip) * tokens, out_channels * tokens, temb_channels)
            for width, skip in zip(widths, skip_channels)
        )
        self.attentions = nn.ModuleList(
            spatial_transformer(out_channels, num_heads, context_dim)
            for _ in range(len(skip_channels) if with_attention else 0)
        )
        width = out_channels * tokens
        self.upsamplers = nn.ModuleList([nn.Linear(width, width)] if add_upsample else [])

    def forward(
        self,
        h: torch.Tensor,
        skips: list[torch.Tensor],
        emb: torch.Tensor,
        context: torch.Tensor,
        connectors: nn.ModuleList | None = None,
        environment: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Consumes `len(self.resnets)` skips from the end of `skips`."""
        last = len(self.resnets) - 1
        for i, resnet in enumerate(self.resnets):
            h = resnet(torch.cat([h, skips.pop()], dim=1), emb)
            if self.attentions:
                h = attend(self.attentions[i], h, context)
            if i == last:
                for upsampler in self.upsamplers:
                    h = dense(upsampler, h)
            if connectors:
                h = attend(connectors[i], h, environment)
        return h


class TextMidBlock(nn.Module):
    """FC block, transformer, FC block at the deepest width."""

    def __init__(
        self, channels: int, tokens: int, temb_channels: int, num_heads: int, context_dim: int
    ) -> None:
        super().__init__()
        width = channels * tokens
        self.resnets = nn.ModuleList(FCBlock(width, width, temb_channels) for _ in range(2))
        self.attentions = nn.ModuleList([spatial_transformer(channels, num_heads, context_dim)])

    def forward(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.resnets[0](h, emb)
        h = attend(self.attentions[0], h, context)
        return self.resnets[1](h, emb)


class CoDiTextUNetModel(ModelMixin, ConfigMixin):
    """The text-latent diffusion UNet: `[B, 768]` latent, `[B, 1, D]` context → `[B, 768]` ε.

    Args:
        in_channels / out_channels: latent width (768).
        model_channels: width C at level 0 (320); the time embedding is 4·C wide.
        channel_mult: width multiplier per level.
        num_res_blocks: FC blocks per encoder level (the decoder has one more).
        with_attention: whether a level has transformers.
        second_dim: tokens S per activation (the same at every level).
        num_heads: attention heads (head dim = width / heads).
        context_dim: width of the conditioning token.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 768,
        out_channels: int = 768,
        model_channels: int = 320,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: tuple[int, ...] = (2, 2, 2, 2),
        with_attention: tuple[bool, ...] = (True, True, True, False),
        second_dim: int = 4,
        num_heads: int = 8,
        context_dim: int = 768,
    ) -> None:
        super().__init__()
        tokens = second_dim
        temb = 4 * model_channels
        widths = [model_channels * m for m in channel_mult]
        levels = len(widths)

        self.time_proj = Timesteps(model_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(model_channels, temb)
        self.proj_in = nn.Linear(in_channels, model_channels * tokens)

        self.down_blocks = nn.ModuleList()
        skip_channels = [model_channels]
        previous = model_channels
        for level, width in enumerate(widths):
            last = level == levels - 1
            self.down_blocks.append(
                TextDownBlock(
                    previous, width, tokens, temb, num_res_blocks[level], with_attention[level],
                    add_downsample=not last, num_heads=num_heads, context_dim=context_dim,
                )
            )
            skip_channels += [width] * (num_res_blocks[level] + (0 if last else 1))
            previous = width

        self.mid_block = TextMidBlock(previous, tokens, temb, num_heads, context_dim)

        self.up_blocks = nn.ModuleList()
        for level in reversed(range(levels)):
            count = num_res_blocks[level] + 1
            skips = [skip_channels.pop() for _ in range(count)]
            self.up_blocks.append(
                TextUpBlock(
                    previous, skips, widths[level], tokens, temb, with_attention[level],
                    add_upsample=level > 0, num_heads=num_heads, context_dim=context_dim,
                )
            )
            previous = widths[level]

        self.norm_out = nn.GroupNorm(GROUPS, model_channels, eps=FC_NORM_EPS)
        self.proj_out = nn.Linear(model_channels * tokens, out_channels)

    def time_embedding(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`[B]` timesteps → `[B, 4·C]`: [cos, sin] sinusoid, then Linear–SiLU–Linear."""
        t_emb = self.time_proj(timestep).to(self.time_embed.linear_1.weight.dtype)
        return self.time_embed(t_emb).to(dtype)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        context: torch.Tensor,
        connectors: CoDiTextConnectors | None = None,
        environment: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ε for `sample` `[B, 768]` at `timestep` (`[B]` or scalar) given `context` `[B, 1, D]`.

        With `connectors` and their `environment` `[B, 1, Cc]`, each connector transformer runs
        after its main block (joint generation).
        """
        if (connectors is None) != (environment is None):
            raise ValueError("connectors and environment must be given together")
        batch = sample.shape[0]
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        emb = self.time_embedding(timestep, sample.dtype)
        tokens = self.config.second_dim

        h = self.proj_in(sample.flatten(1)).view(batch, -1, tokens, 1)
        skips = [h]
        for level, block in enumerate(self.down_blocks):
            level_connectors = connectors.down_connectors[level] if connectors is not None else None
            h, block_skips = block(h, emb, context, level_connectors, environment)
            skips += block_skips
        h = self.mid_block(h, emb, context)
        skips[-1] = h  # official quirk: output block 0's skip is the middle block's output
        for level, block in enumerate(self.up_blocks):
            level_connectors = connectors.up_connectors[level] if connectors is not None else None
            h = block(h, skips, emb, context, level_connectors, environment)
        return self.proj_out(F.silu(self.norm_out(h)).flatten(1))


class CoDiTextConnectors(ModelMixin, ConfigMixin):
    """The text UNet's joint-generation parts: environment encoder + connector transformers.

    The environment encoder maps the text latent (with the text UNet's time embedding) to a
    `[B, Cc, 1, 1]` vector; the connector transformers cross-attend the UNet's activations to its
    normalised mean. They sit after input blocks of levels with `with_connector` and after every
    decoder block of those levels. As in the official construction, the connector transformers
    start with a zero output projection, i.e. as identities.

    Args:
        in_channels: latent width (768).
        model_channels / channel_mult / num_res_blocks / second_dim / num_heads: the text UNet's.
        with_connector: whether a UNet level has connector transformers.
        env_channel_mult: encoder width multipliers (of `model_channels`) per encoder level; the
            encoder starts at `model_channels // 2`.
        env_num_res_blocks: FC blocks per encoder level.
        env_second_dim: tokens in the encoder.
        environment_channels: width Cc of the environment vector.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 768,
        model_channels: int = 320,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: tuple[int, ...] = (2, 2, 2, 2),
        with_connector: tuple[bool, ...] = (True, True, True, False),
        second_dim: int = 4,
        num_heads: int = 8,
        env_channel_mult: tuple[int, ...] = (1, 2, 4),
        env_num_res_blocks: tuple[int, ...] = (1, 1, 1),
        env_second_dim: int = 4,
        environment_channels: int = 1280,
    ) -> None:
        super().__init__()
        temb = 4 * model_channels
        tokens = env_second_dim
        previous = model_channels // 2
        self.env_proj_in = nn.Linear(in_channels, previous * tokens)
        self.env_down_blocks = nn.ModuleList()
        for level, mult in enumerate(env_channel_mult):
            width = model_channels * mult
            self.env_down_blocks.append(
                TextDownBlock(
                    previous, width, tokens, temb, env_num_res_blocks[level], with_attention=False,
                    add_downsample=level < len(env_channel_mult) - 1,
                )
            )
            previous = width
        self.env_norm_out = nn.GroupNorm(GROUPS, previous, eps=FC_NORM_EPS)
        self.env_proj_out = nn.Linear(previous * tokens, environment_channels)

        widths = [model_channels * m for m in channel_mult]

        def connector_list(level: int, count: int) -> nn.ModuleList:
            return nn.ModuleList(
                spatial_transformer(widths[level], num_heads, environment_channels)
                for _ in range(count if with_connector[level] else 0)
            )

        levels = range(len(widths))
        self.down_connectors = nn.ModuleList(
            connector_list(level, num_res_blocks[level]) for level in levels
        )
        self.up_connectors = nn.ModuleList(
            connector_list(level, num_res_blocks[level] + 1) for level in reversed(levels)
        )
        for group in (*self.down_connectors, *self.up_connectors):
            for transformer in group:
                nn.init.zeros_(transformer.proj_out.weight)
                nn.init.zeros_(transformer.proj_out.bias)

    def raw_environment(self, sample: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The environment encoder's output `[B, Cc, 1, 1]` for the latent `[B, 768]`."""
        batch = sample.shape[0]
        h = self.env_proj_in(sample.flatten(1)).view(batch, -1, self.config.env_second_dim, 1)
        for block in self.env_down_blocks:
            h, _ = block(h, emb)
        h = self.env_proj_out(F.silu(self.env_norm_out(h)).flatten(1))
        return h.view(batch, -1, 1, 1)

    def environment(self, sample: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The connectors' context `[B, 1, Cc]`: raw environment averaged, then L2-normalised."""
        vector = self.raw_environment(sample, emb).flatten(2).mean(dim=-1)
        return (vector / vector.norm(dim=-1, keepdim=True)).unsqueeze(1)
