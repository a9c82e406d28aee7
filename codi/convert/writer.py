"""Writing one component as a diffusers-style sub-folder (config + safetensors)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from codi import __version__
from codi.convert.spec import ComponentSpec
from codi.official_config import OfficialConfig

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
TRANSFORMERS_WEIGHTS = "model.safetensors"


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
    folder: Path, spec: ComponentSpec, official: OfficialConfig, tensors: dict[str, torch.Tensor]
) -> str:
    """config.json + one safetensors file that `spec.model_class.from_pretrained` opens.

    Returns the weights file's sha256, which results record so they can be reproduced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    module = build_on_meta(spec, official)
    save_module_config(module, folder)
    path = folder / weights_name(module)
    save_file(_unshared(tensors), str(path), metadata={"format": "pt"})
    return file_sha256(path)


def file_sha256(path: Path, chunk: int = 1 << 24) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, cloning any that share storage (safetensors refuses shared memory)."""
    seen: set[int] = set()
    out = {}
    for key, tensor in tensors.items():
        tensor = tensor.contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


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
