"""Key/shape manifests of official checkpoints, as shape-only (meta) state dicts."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import torch


def read_manifest(path: Path) -> dict:
    """A manifest file (JSON, optionally gzip'd)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return json.load(handle)


def manifest_sources(path: Path) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """(group, {key: meta tensor}) per group: one group per checkpoint file, or one in all.

    Accepts `{"state_dict": {"tensors": [...]}}` and `{file name: {"tensors": [...]}, ...}`;
    each tensor entry has `key`, `shape` and `dtype` (e.g. "float32").
    """
    manifest = read_manifest(path)
    groups = [(name, group) for name, group in manifest.items() if isinstance(group, dict)]
    if not any("tensors" in group for _, group in groups):
        raise ValueError(f"{path} is not a key/shape manifest (no 'tensors' lists)")
    for name, group in groups:
        if "tensors" in group:
            yield name, {
                entry["key"]: torch.empty(
                    entry["shape"], dtype=getattr(torch, entry.get("dtype", "float32")),
                    device="meta",
                )
                for entry in group["tensors"]
            }
