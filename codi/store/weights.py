"""Opening a converted CoDi folder, one component at a time."""

from __future__ import annotations

from pathlib import Path

import torch

from codi.convert.registry import spec_by_name


def load_component(
    folder: Path, name: str, dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """Our component `name` from a converted folder (memory-mapped safetensors), in eval mode."""
    from diffusers import ModelMixin

    spec = spec_by_name(name)
    kwargs = {}
    if dtype is not None:  # diffusers and transformers name this argument differently
        kwargs["torch_dtype" if issubclass(spec.model_class, ModelMixin) else "dtype"] = dtype
    model = spec.model_class.from_pretrained(Path(folder) / name, **kwargs)
    return model.eval()


def available_components(folder: Path) -> list[str]:
    """Components present in a converted folder."""
    return sorted(p.parent.name for p in Path(folder).glob("*/config.json"))
