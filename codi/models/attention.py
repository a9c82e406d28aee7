"""Choosing how diffusers attention layers compute softmax(QKᵀ)V inside our networks."""

from __future__ import annotations

from typing import Literal

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

AttentionBackend = Literal["sdpa", "classic"]


def set_attention_backend(module: torch.nn.Module, backend: AttentionBackend) -> int:
    """Set every diffusers attention layer in `module`; returns how many were set.

    "sdpa" (default in diffusers) is PyTorch's fused scaled-dot-product attention: fast and
    memory-efficient. "classic" materialises the attention matrix as the official CoDi code does
    (scores, softmax, weighted sum), which reproduces its float32 rounding more closely — the parity
    runner uses it.
    """
    processor = AttnProcessor() if backend == "classic" else AttnProcessor2_0()
    count = 0
    for layer in module.modules():
        if hasattr(layer, "set_processor"):
            layer.set_processor(processor)
            count += 1
    return count
