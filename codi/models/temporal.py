"""CoDi's video layers: the `SpatioTemporalAttention` that follows every ResBlock of the image UNet.

No diffusers module computes these (frame-axis LayerNorm, token shift, per-chunk frame delays), so
they are written here. Inputs are video activations laid out [B, C, T, H, W]; a 4-D (image)
activation passes through unchanged, so image generation never runs them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codi.models.norms import normalise, normalise_last

#: Attention heads of the temporal attention, fixed whatever the UNet's head count
#: (quirk Q3, docs/quirks.md).
TEMPORAL_HEADS = 8
#: Frame rate the official UNet passes to its temporal attention (selects `frame_rate_embeds`).
FRAMERATE = 4
#: Longest clip the learned frame position/rate tables cover.
MAX_FRAMES = 30


def _delay_frames(x: torch.Tensor, frames: int, dim: int = 2) -> torch.Tensor:
    """Shift x `frames` steps later along its frame axis `dim` (2 of [B, C, T, H, W], 1 of
    [N, T, C]); the first frames become zeros (all of them when `frames` >= T)."""
    if frames == 0:
        return x
    if frames >= x.shape[dim]:
        return torch.zeros_like(x)
    return F.pad(x, (0, 0) * (x.ndim - 1 - dim) + (frames, -frames))


class FrameAxisLayerNorm(nn.Module):
    """Official temporal-attention LayerNorm: on [N, T, C] it normalises over the FRAME axis
    (dim 1), per channel, with a per-channel gain (quirk Q2, docs/quirks.md). Reproduced as is."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalise(x, 1) * self.weight


class ChanLayerNorm(nn.Module):
    """Gain-only LayerNorm over the channels, the last axis of the frame sequences [N, T, C]
    (the official one normalises axis 1 of [B, C, T, H, W]: the same numbers)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalise_last(x, self.weight.to(x.dtype))


class ContinuousPositionBias(nn.Module):
    """Per-head attention bias from an MLP on the signed log distance between frames."""

    def __init__(self, dim: int, heads: int = TEMPORAL_HEADS):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, heads)
        )

    def forward(self, frames: int) -> torch.Tensor:
        """Bias [heads, frames, frames]."""
        device, dtype = self.mlp[0].weight.device, self.mlp[0].weight.dtype
        rel = torch.arange(-frames + 1, frames, device=device, dtype=torch.float32)
        rel = (torch.sign(rel) * torch.log(rel.abs() + 1)).to(dtype)
        table = self.mlp(rel[:, None])  # [2T-1, heads]
        pos = torch.arange(frames, device=device)
        index = pos[:, None] - pos[None, :] + frames - 1
        return table[index].permute(2, 0, 1)


class TemporalAttention(nn.Module):
    """Self-attention across frames with learned frame position and frame-rate embeddings."""

    def __init__(self, dim: int, heads: int = TEMPORAL_HEADS):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // 4
        inner = self.head_dim * heads
        self.norm = FrameAxisLayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.pos_embeds = nn.Parameter(torch.randn(1, MAX_FRAMES, dim))
        self.frame_rate_embeds = nn.Parameter(torch.randn(1, MAX_FRAMES, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x [N, T, C] -> attention output [N, T, C] (no residual)."""
        n, t, _ = x.shape
        x = x + self.pos_embeds[:, :t] + self.frame_rate_embeds[:, FRAMERATE - 1 : FRAMERATE]
        x = self.norm(x)
        q = self.to_q(x)
        k, v = self.to_kv(x).chunk(2, dim=-1)
        q, k, v = (z.view(n, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        sim = (q * self.head_dim**-0.5) @ k.transpose(-1, -2) + bias
        out = sim.softmax(dim=-1) @ v
        return self.to_out(out.transpose(1, 2).reshape(n, t, -1))


class TemporalFeedForward(nn.Module):
    """GEGLU feed-forward (computed in float32) with a one-frame token shift of half the hidden
    channels and a channel LayerNorm before the output projection.

    It runs on the frame sequences [N, T, C] the temporal attention already uses. The official
    runs it on [B, C, T, H, W] with 1×1×1 Conv3d projections; the same weights applied as linear
    maps over the last axis give the same numbers without transposing the activations: in one
    video UNet call on a 2-core AVX-512 CPU the feed-forwards take 2.4 s instead of 3.3 s in
    float32, and in bf16, with the in-place GEGLU and the fused channel norm, 1.0 s instead of
    3.7 s (docs/benchmarks.md, "The feed-forward on the frame sequences"). The Conv3d modules
    stay, so the state dict keeps its shapes.
    """

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = int(dim * mult * 2 / 3)
        self.proj_in = nn.Conv3d(dim, inner * 2, 1, bias=False)
        self.norm = ChanLayerNorm(inner)
        self.proj_out = nn.Conv3d(inner, dim, 1, bias=False)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq [N, T, C] -> [N, T, C] (no residual)."""
        value, gate = F.linear(seq, self.proj_in.weight.flatten(1)).chunk(2, dim=-1)
        if torch.is_grad_enabled() and value.requires_grad:
            h = _geglu_then_delay(value, gate)
        else:
            h = _geglu_delayed_in_place(value, gate)
        return F.linear(self.norm(h).to(self.proj_out.weight.dtype),
                        self.proj_out.weight.flatten(1))


def _geglu_then_delay(value: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """float32 value · GELU(gate) on [N, T, C], the second half of its channels one frame later
    (differentiable)."""
    h = value.float() * F.gelu(gate.float())
    kept, shifted = h.chunk(2, dim=-1)
    return torch.cat((kept, _delay_frames(shifted, 1, dim=1)), dim=-1)


def _geglu_delayed_in_place(value: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """`_geglu_then_delay` without autograd: each half is written where it belongs in one
    float32 buffer, so the activations are neither converted nor concatenated as a whole (with
    the fused channel norm, one bf16 feed-forward at 320 channels on a CPU: 85.9 ms, not 161.5)."""
    n, t, inner = value.shape
    keep = (inner + 1) // 2  # the first chunk of `chunk(2)`
    h = value.new_empty((n, t, inner), dtype=torch.float32)
    torch.mul(value[..., :keep], F.gelu(gate[..., :keep].float()), out=h[..., :keep])
    h[:, :1, keep:] = 0
    torch.mul(value[:, :-1, keep:], F.gelu(gate[:, :-1, keep:].float()), out=h[:, 1:, keep:])
    return h


class FrameShift(nn.Module):
    """conv3x3(SiLU(GroupNorm(x))) per frame, with channel chunk k delayed by k frames."""

    def __init__(self, dim: int, chunks: int = 8):
        super().__init__()
        self.chunks = chunks
        self.norm = nn.GroupNorm(32, dim, eps=1e-5)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, hh, ww = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, hh, ww)
        h = self.conv(F.silu(self.norm(frames)))
        h = h.view(b, t, -1, hh, ww).permute(0, 2, 1, 3, 4)
        return torch.cat(
            [_delay_frames(z, k) for k, z in enumerate(h.chunk(self.chunks, dim=1))], 1
        )


class SpatioTemporalAttention(nn.Module):
    """Temporal attention, feed-forward and frame shift, each residual, on [B, C, T, H, W]."""

    def __init__(self, dim: int):
        super().__init__()
        self.attn = TemporalAttention(dim)
        self.pos_bias = ContinuousPositionBias(dim // 2)
        self.ff = TemporalFeedForward(dim)
        self.frame_shift = FrameShift(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return x
        b, c, t, h, w = x.shape
        seq = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
        seq = seq + self.attn(seq, self.pos_bias(t))
        seq = seq + self.ff(seq)
        x = seq.view(b, h, w, t, c).permute(0, 4, 3, 1, 2)
        return x + self.frame_shift(x)
