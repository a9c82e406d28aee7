"""Weight-only 8-bit / 4-bit quantization of a loaded component's `nn.Linear` layers (bitsandbytes).

diffusers' `BitsAndBytesConfig` refuses to run without a GPU, so we load in full precision and swap
each `nn.Linear` for its bitsandbytes twin ourselves; this works on CPU and CUDA alike.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from torch import nn

QuantizeMode = Literal["none", "int8", "int4"]
QUANTIZE_MODES: tuple[str, ...] = ("none", "int8", "int4")
#: Layers narrower than this stay in full precision: they weigh little and lose the most.
MIN_FEATURES = 64
#: Layers under these names stay in full precision: they are small, and the text UNet casts the
#: time embedding's input to that layer's weight dtype (which would be int8).
KEEP_PRECISION = ("time_embed",)
#: bitsandbytes' outlier threshold of LLM.int8() (features above it run in 16-bit).
INT8_THRESHOLD = 6.0


def _bnb():
    try:
        import bitsandbytes
    except ImportError as error:  # pragma: no cover - it is in requirements.txt
        raise RuntimeError("quantization needs bitsandbytes (pip install bitsandbytes)") from error
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    return bitsandbytes


def _quantized_twin(linear: nn.Linear, mode: QuantizeMode, device: torch.device) -> nn.Module:
    bnb = _bnb()
    # In its own dtype: bitsandbytes converts on the target device, so an fp16 weight crosses
    # to a GPU at 2 bytes per value instead of as a float32 copy of 4.
    weight = linear.weight.data.detach().cpu()
    has_bias = linear.bias is not None
    if mode == "int8":
        twin = bnb.nn.Linear8bitLt(
            linear.in_features, linear.out_features, bias=has_bias,
            has_fp16_weights=False, threshold=INT8_THRESHOLD,
        )
        twin.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        twin = bnb.nn.Linear4bit(
            linear.in_features, linear.out_features, bias=has_bias,
            compute_dtype=linear.weight.dtype, quant_type="nf4",
        )
        twin.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    if has_bias:
        twin.bias = nn.Parameter(linear.bias.data.detach().clone(), requires_grad=False)
    return twin.to(device)  # moving the parameters is what quantizes them


def quantize_linears(
    module: nn.Module, mode: QuantizeMode, device: torch.device | str = "cpu",
    min_features: int = MIN_FEATURES,
) -> int:
    """Replace every `nn.Linear` of `module` (both sides ≥ `min_features`) in place; returns the
    number replaced. Convolutions, norms and embeddings keep their precision."""
    if mode == "none":
        return 0
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize {mode!r}: use one of {', '.join(QUANTIZE_MODES)}")
    device = torch.device(device)
    targets = [
        (parent, name, child)
        for path, parent in module.named_modules()
        if not any(part in KEEP_PRECISION for part in path.split("."))
        for name, child in parent.named_children()
        if type(child) is nn.Linear and min(child.in_features, child.out_features) >= min_features
    ]
    for parent, name, child in targets:
        setattr(parent, name, _quantized_twin(child, mode, device))
    return len(targets)


def is_quantized(module: nn.Module) -> bool:
    """Whether `module` holds any bitsandbytes layer."""
    return any(type(m).__module__.startswith("bitsandbytes") for m in module.modules())


def quantized_weight_bytes(linear_params: int, mode: QuantizeMode, rows: int = 0) -> float:
    """Bytes of `linear_params` weights after quantization (with per-row / per-block scales)."""
    if mode == "int8":
        return linear_params + 4 * rows
    if mode == "int4":
        return linear_params / 2 + linear_params / 64 * 4
    raise ValueError(mode)
