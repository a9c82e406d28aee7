"""Opening a converted CoDi folder, one component at a time."""

from __future__ import annotations

from pathlib import Path

import torch

from codi.models.registry import model_component


def load_component(
    folder: Path, name: str, dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """Our component `name` from a converted folder (memory-mapped safetensors), in eval mode."""
    from diffusers import ModelMixin

    component = model_component(name)
    kwargs = {}
    if dtype is not None:  # diffusers and transformers name this argument differently
        kwargs["torch_dtype" if issubclass(component.model_class, ModelMixin) else "dtype"] = dtype
    model = component.model_class.from_pretrained(Path(folder) / name, **kwargs)
    return model.eval()


def available_components(folder: Path) -> list[str]:
    """Components present in a converted folder."""
    return sorted(p.parent.name for p in Path(folder).glob("*/config.json"))
