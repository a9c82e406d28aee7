"""The bias-free, gain-only layer norms of CoDi's temporal layers (UNet and CLIP video), computed
the fast way on a CPU.

The official norms clamp the variance at eps (they do not add it), and take eps from the input's
dtype: 1e-5 for float32, 1e-3 for half precision (`official_eps`). The statistics are taken in
two passes (mean, then the mean of the squared deviations): the same maths as `torch.var`, and on
a CPU about ten times faster over the 8 frames of `[N, T, C]` (docs/benchmarks.md, "The video path
on a CPU"). `normalise_last` is the same norm over the last axis with its gain, in one fused
`native_layer_norm` pass and a per-row correction from eps-added to eps-clamped.
"""

from __future__ import annotations

import torch


def official_eps(x: torch.Tensor) -> float:
    """The official norms' eps for an input of x's dtype: 1e-3 for float16 and bfloat16, 1e-5
    for float32. Float64, which the official code never runs (its rule would give 1e-3), keeps
    float32's: it is the parity runner's rounding reference, the float32 norm computed exactly."""
    return 1e-3 if x.dtype in (torch.float16, torch.bfloat16) else 1e-5


def normalise(x: torch.Tensor, dim: int, eps: float | None = None) -> torch.Tensor:
    """(x − mean) / sqrt(max(var, eps)) over `dim` (population variance; eps by default the
    official one for x's dtype). The gain is the caller's."""
    mean = x.mean(dim, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim, keepdim=True)
    return centred * var.clamp(min=official_eps(x) if eps is None else eps).rsqrt()


def normalise_last(x: torch.Tensor, weight: torch.Tensor | None = None,
                   eps: float | None = None) -> torch.Tensor:
    """`normalise(x, -1) * weight`, computed by the fused layer norm.

    `native_layer_norm` returns (x − mean) · rstd with rstd = 1/sqrt(var + eps); each row is then
    scaled by sqrt((var + eps) / max(var, eps)), var recovered from rstd, which turns the added
    eps into the official clamp (a factor of exactly 1 for a constant row, no NaN). On a 2-core
    AVX-512 CPU, float32 [2048, 8, 853]: 28.7 ms against 58.7 ms for `normalise(x, -1) * weight`.
    """
    eps = official_eps(x) if eps is None else eps
    out, _, rstd = torch.native_layer_norm(x, (x.shape[-1],), weight, None, eps)
    total = rstd.pow(-2)  # var + eps
    return out * (total / (total - eps).clamp(min=eps)).sqrt()
