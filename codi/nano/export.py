"""Trained CoDi-Nano components → a model folder the pipeline opens (fp16 safetensors)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torch import nn

from codi.models.official_config import OfficialConfig
from codi.nano.config import NANO_DEFAULTS, NANO_GEOMETRY
from codi.store.assets import NANO_DIR

NANO_KIND = "nano"
NANO_ID = "codi-nano"
NANO_NOTE = (
    "CoDi-Nano: a tiny CoDi trained by this project on its synthetic shapes world (coloured "
    "circles, squares and triangles, their motions and sounds); it knows nothing else. "
    "Download the full model with `python -m codi download`."
)


#: Training-summary keys that name folders of the machine that trained: not kept in the model.
MACHINE_PATHS = ("run_dir", "export_dir")


def export_nano(
    components: dict[str, nn.Module],
    official: OfficialConfig,
    dst: Path = NANO_DIR,
    vocab_dir: Path | None = None,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write every component (fp16 weights, fp32 buffers), model_index.json and the tokenizers."""
    from codi.convert.registry import spec_by_name
    from codi.convert.writer import write_component, write_model_index
    from codi.pipeline.previews import PREVIEW_KEY, fit_latent_to_rgb
    from codi.store.assets import VOCAB_DIR
    from codi.store.tokenizers import save_tokenizers

    dst = Path(dst)
    partial = dst.with_name(dst.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    specs = [spec_by_name(name) for name in components]
    sha256 = {}
    for spec in specs:
        module = components[spec.name]
        buffers = {name for name, _ in module.named_buffers()}
        tensors = {
            key: (value.half() if key not in buffers and value.is_floating_point() else value)
            .detach().cpu().contiguous()
            for key, value in module.state_dict().items()
        }
        sha256[spec.name] = write_component(partial / spec.name, spec, official, tensors)
    extra = {"kind": NANO_KIND, "model_id": NANO_ID, "note": NANO_NOTE,
             "defaults": dict(NANO_DEFAULTS), "geometry": dict(NANO_GEOMETRY),
             "training": {k: v for k, v in (training or {}).items() if k not in MACHINE_PATHS}}
    if "vae_image" in components:
        extra[PREVIEW_KEY] = fit_latent_to_rgb(components["vae_image"]).to_json()
    write_model_index(partial, official, specs, sha256, extra)
    save_tokenizers(partial, vocab_dir or VOCAB_DIR)
    if dst.exists():
        shutil.rmtree(dst)
    partial.rename(dst)
    return dst


def folder_megabytes(folder: Path) -> float:
    """Size of a folder's files in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


