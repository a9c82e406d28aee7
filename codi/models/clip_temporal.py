"""The temporal layer CoDi adds to every CLIP vision encoder layer (video conditioning only).

It runs per token over frames on `[N, F, C]` (N = batch·tokens): residual attention across frames
with a continuous relative-position bias, then a residual GEGLU feed-forward of 1-wide convs.
Nothing here exists in transformers/diffusers in this form, hence our own modules; the UNet's
temporal layer (codi/models/temporal.py) is a different variant (framerate/pos embeddings added,
token shift, Conv3d); both norm with `codi.models.norms`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codi.models.norms import normalise


class FrameAxisLayerNorm(nn.Module):
    """Bias-free LayerNorm over axis 1 of `[N, F, C]`, i.e. across FRAMES, with a per-channel gain.

    CoDi's quirk (parity README Q2): not a channel LayerNorm, so `nn.LayerNorm` cannot express it.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalise(x, 1) * self.g


class ChanLayerNorm(nn.Module):
    """Bias-free LayerNorm over the channel axis of `[N, C, F]`, gain `[1, C, 1]`, output cast to
    the gain's dtype (the official feed-forward norm; its eps follows the float32 GEGLU output)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalise(x, 1).to(self.g.dtype) * self.g


class GEGLU(nn.Module):
    """value · GELU(gate) over the channel halves of `[N, 2C, F]`, computed in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.float().chunk(2, dim=1)
        return value * F.gelu(gate)


class ContinuousPositionBias(nn.Module):
    """Per-head attention bias `[heads, F, F]` from an MLP on the signed log frame distance."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Sequential(nn.Linear(1, dim), nn.SiLU()),
            nn.Sequential(nn.Linear(dim, dim), nn.SiLU()),
            nn.Linear(dim, heads),
        )

    def forward(self, frames: int) -> torch.Tensor:
        weight = self.net[0][0].weight
        pos = torch.arange(frames, device=weight.device, dtype=weight.dtype)
        dist = pos[:, None] - pos[None, :]
        dist = torch.sign(dist) * torch.log(dist.abs() + 1)
        return self.net(dist.unsqueeze(-1)).permute(2, 0, 1)


class TemporalAttention(nn.Module):
    """Multi-head self-attention across frames on `[N, F, C]`, pre-normed over the frame axis.

    No positional or framerate embedding is added: the CLIP copy passes no framerate.
    """

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = FrameAxisLayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        q = self.to_q(x)
        k, v = self.to_kv(x).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.to_out(out.transpose(1, 2).flatten(2))


class TemporalFeedForward(nn.Module):
    """1-wide Conv1d C→2·inner (no bias), GEGLU in float32, ChanLayerNorm, Conv1d inner→C."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        inner = int(dim * mult * 2 / 3)
        self.proj_in = nn.Sequential(nn.Conv1d(dim, inner * 2, 1, bias=False), GEGLU())
        self.proj_out = nn.Sequential(ChanLayerNorm(inner), nn.Conv1d(inner, dim, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.proj_in(x.transpose(1, 2))).transpose(1, 2)


class CLIPTemporalBlock(nn.Module):
    """Residual temporal attention, then residual feed-forward, per token over frames.

    Input/output `[B·F, L, C]` with frames folded into the batch (as the spatial layers see it).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.temporal_attn = TemporalAttention(dim, heads, dim // heads)
        self.temporal_rel_pos_bias = ContinuousPositionBias(dim // 2, heads)
        self.ff = TemporalFeedForward(dim)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, tokens, dim = hidden_states.shape
        x = hidden_states.reshape(bf // num_frames, num_frames, tokens, dim).transpose(1, 2)
        x = x.reshape(-1, num_frames, dim)
        attn = self.temporal_attn(x, self.temporal_rel_pos_bias(num_frames))
        x = x + torch.nan_to_num(attn)
        x = x + self.ff(x)
        x = x.reshape(bf // num_frames, tokens, num_frames, dim).transpose(1, 2)
        return x.reshape(bf, tokens, dim)
