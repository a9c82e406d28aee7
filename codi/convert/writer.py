"""Writing one component as a diffusers-style sub-folder (config + safetensors)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from codi import __version__
from codi.convert.spec import ComponentSpec
from codi.models.official_config import OfficialConfig

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"
SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def build_on_meta(spec: ComponentSpec, official: OfficialConfig) -> torch.nn.Module:
    """Our module with shapes only: nothing is allocated, so full size costs nothing."""
    with torch.device("meta"):
        return spec.build(official)


def expected_tensors(spec: ComponentSpec, official: OfficialConfig) -> dict[str, torch.Tensor]:
    """Our component's persistent state dict on the meta device."""
    return build_on_meta(spec, official).state_dict()


def weights_name(module: torch.nn.Module) -> str:
    """The file name `from_pretrained` looks for: diffusers and transformers differ."""
    from diffusers import ModelMixin

    return DIFFUSERS_WEIGHTS if isinstance(module, ModelMixin) else TRANSFORMERS_WEIGHTS


def save_module_config(module: torch.nn.Module, folder: Path) -> None:
    """Write config.json the way the module's library reads it back."""
    if hasattr(module, "save_config"):
        module.save_config(folder)
    elif hasattr(getattr(module, "config", None), "save_pretrained"):
        module.config.save_pretrained(folder)
    else:
        raise TypeError(f"{type(module).__name__} has no diffusers or transformers config")


def write_component(
    folder: Path,
    spec: ComponentSpec,
    official: OfficialConfig,
    tensors: Mapping[str, torch.Tensor],
    dtype: torch.dtype | None = None,
) -> str:
    """config.json + one safetensors file that `spec.model_class.from_pretrained` opens.

    Floating tensors are cast to `dtype` (when given) one at a time as they are written.
    Returns the weights file's sha256, which results record so they can be reproduced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    module = build_on_meta(spec, official)
    save_module_config(module, folder)
    return save_safetensors(tensors, folder / weights_name(module), {"format": "pt"}, dtype)


def save_safetensors(
    tensors: Mapping[str, torch.Tensor],
    path: Path,
    metadata: dict[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write a safetensors file tensor by tensor and return its sha256.

    Ours rather than `safetensors.torch.save_file`, which needs every tensor materialised in the
    target dtype up front (a whole component's cast copies). Here at most one cast tensor exists
    at a time, memory-mapped inputs are read straight from their pages, the hash is computed
    while writing (no second read), and the file is written beside `path` and renamed, so the
    inputs may be mapped from `path` itself. Tensors sharing storage need no clone. The layout
    (widest dtypes first, then by name) is safetensors' own.
    """
    def target(tensor: torch.Tensor) -> torch.dtype:
        return dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype

    order = sorted(tensors, key=lambda k: (-target(tensors[k]).itemsize, k))
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for key in order:
        tensor = tensors[key]
        size = tensor.numel() * target(tensor).itemsize
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[target(tensor)],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        for chunk in (struct.pack("<Q", len(blob)), blob):
            handle.write(chunk)
            digest.update(chunk)
        for key in order:
            tensor = tensors[key]
            data = _raw_bytes(tensor.to(target(tensor)).contiguous())
            handle.write(data)
            digest.update(data)
    os.replace(partial, path)
    return digest.hexdigest()


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes without a copy (little-endian hosts, as safetensors requires)."""
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())


def file_sha256(path: Path, chunk: int = 1 << 24) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_model_index(
    dst: Path,
    official: OfficialConfig,
    specs: list[ComponentSpec],
    sha256: dict[str, str],
    extra: dict | None = None,
) -> None:
    """`model_index.json`: the component classes, their weight hashes and CoDi's constants."""
    index: dict = {"_class_name": "CoDiPipeline", "_codi_version": __version__, **(extra or {})}
    for spec in specs:
        index[spec.name] = [spec.model_class.__module__, spec.model_class.__name__]
    index["codi"] = {
        "scale_factors": official.scale_factors,
        "num_train_timesteps": int(official.codi["timesteps"]),
        "beta_start": float(official.codi["beta_linear_start"]),
        "beta_end": float(official.codi["beta_linear_end"]),
        "beta_schedule": "scaled_linear",
    }
    index["weights_sha256"] = dict(sorted(sha256.items()))
    (dst / "model_index.json").write_text(json.dumps(index, indent=1))
