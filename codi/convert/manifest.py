"""Key/shape manifests of official checkpoints, as shape-only (meta) state dicts."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from codi.convert.registry import all_specs, owner_of
from codi.convert.writer import build_on_meta
from codi.models.official_config import OfficialConfig


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


def is_param_count_manifest(path: Path) -> bool:
    """True for a `{"parameter_counts": {...}}` file (official parameter totals per submodule)."""
    return "parameter_counts" in read_manifest(path)


@dataclass
class GroupCount:
    """One official submodule: its parameters, ours, and the official ones we knowingly drop."""

    group: str
    official: int
    ours: int
    unused: int

    @property
    def ok(self) -> bool:
        return self.official == self.ours + self.unused


def compare_param_counts(
    counts_path: Path, state_dict_manifest: Path, official: OfficialConfig
) -> list[GroupCount]:
    """Per official top-level submodule: official parameters = ours + knowingly unused ones.

    Our side is every component built at full size on the meta device; "knowingly unused" are the
    parameter keys (from the key/shape manifest) that the specs drop, such as the CLAP classifier
    head. Tied parameters count once, as in the official totals.
    """
    counts = read_manifest(counts_path)
    tied = {pair[1] for pair in counts.get("tied_parameters", [])}
    groups = [g for g in counts["parameter_counts"] if _is_top_level(g)]
    ours = {g: 0 for g in groups}
    for spec in all_specs():
        module = build_on_meta(spec, official)
        size = sum(p.numel() for p in module.parameters())
        ours[_group_of(spec.prefixes[0], groups)] += size
    unused = {g: 0 for g in groups}
    for entry in read_manifest(state_dict_manifest)["state_dict"]["tensors"]:
        key = entry["key"]
        owner = owner_of(key)
        if entry.get("kind") != "parameter" or key in tied or owner is None:
            continue
        spec, local = owner
        if spec.unused_reason(local) is not None:
            unused[_group_of(key, groups)] += math.prod(entry["shape"])
    return [
        GroupCount(g, int(counts["parameter_counts"][g]), ours[g], unused[g]) for g in groups
    ]


def _is_top_level(group: str) -> bool:
    """The submodules our components are cut from: the three UNets and the five encoders/VAEs."""
    return group.startswith("model.diffusion_model.unet_") and group.count(".") == 2 or (
        group in {"autokl", "audioldm", "optimus", "clip", "clap"}
    )


def _group_of(key: str, groups: list[str]) -> str:
    return max((g for g in groups if key.startswith(g + ".")), key=len)
