"""Choosing how diffusers attention layers compute softmax(QKᵀ)V inside our networks."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

AttentionBackend = Literal["sdpa", "xformers", "classic"]
ATTENTION_BACKENDS: tuple[str, ...] = ("sdpa", "xformers", "classic")

logger = logging.getLogger(__name__)


def xformers_usable(device: torch.device | str | None = None) -> bool:
    """xformers is installed, loads, and the module will run on a CUDA device."""
    if device is not None and torch.device(device).type != "cuda":
        return False
    if not torch.cuda.is_available():
        return False
    try:
        import xformers.ops  # noqa: F401
    except Exception:  # a missing package or an extension built for another torch/CUDA
        return False
    return True


def resolve_attention_backend(
    backend: AttentionBackend, device: torch.device | str | None = None
) -> AttentionBackend:
    """The backend that will actually run: "xformers" falls back to "sdpa" where it cannot."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(
            f"attention backend {backend!r}: use one of {', '.join(ATTENTION_BACKENDS)}"
        )
    if backend == "xformers" and not xformers_usable(device):
        logger.info("xformers is not usable here (needs the package and a CUDA device); using sdpa")
        return "sdpa"
    return backend


def _processor(backend: AttentionBackend):
    if backend == "classic":
        return AttnProcessor()
    if backend == "xformers":
        from diffusers.models.attention_processor import XFormersAttnProcessor

        return XFormersAttnProcessor()
    return AttnProcessor2_0()


def set_attention_backend(
    module: torch.nn.Module, backend: AttentionBackend, device: torch.device | str | None = None
) -> int:
    """Set every diffusers attention layer in `module`; returns how many were set.

    "sdpa" (default in diffusers) is PyTorch's fused scaled-dot-product attention: fast and
    memory-efficient. "xformers" is xformers' memory-efficient kernel on CUDA; where it is not
    usable (not installed, no CUDA, `device` not CUDA) it falls back to "sdpa". "classic"
    materialises the attention matrix as the official CoDi code does (scores, softmax, weighted
    sum), which reproduces its float32 rounding more closely — the parity runner uses it.
    """
    processor = _processor(resolve_attention_backend(backend, device))
    count = 0
    for layer in module.modules():
        if hasattr(layer, "set_processor"):
            layer.set_processor(processor)
            count += 1
    return count
