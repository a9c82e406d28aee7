"""How one component of ours is filled from the official state dict.

Every network of CoDi is one `ComponentSpec`: which official key prefixes feed it, how to build our
module from the official configuration, and how each official tensor becomes ours. The converter,
the manifest check and the parity runner all work from these specs alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from codi.models.official_config import OfficialConfig

#: Maps one official tensor (key without the component prefix) to zero or more tensors of ours.
TensorMap = Callable[[str, torch.Tensor], list[tuple[str, torch.Tensor]]]


class UnknownKeyError(KeyError):
    """An official key that a component neither maps nor lists as knowingly unused."""


@dataclass(frozen=True)
class ComponentSpec:
    """One sub-folder of a converted model.

    name: the sub-folder (and attribute) name, e.g. "unet_image".
    prefixes: official key prefixes this component consumes; the longest matching prefix wins
        across all specs, so "audioldm.vocoder." can belong to another spec than "audioldm.".
    model_class: the class whose `from_pretrained(folder / name)` opens the sub-folder, and
    build: builds our module from the official configuration — both from the models' registry
        (`**registered(name)`); tests pass toy ones.
    map_tensor: official key (prefix stripped) + tensor → [(our key, tensor), ...]. Must work on
        meta tensors (shape-only manifests). Raise `UnknownKeyError` for keys it does not know.
    unused: (regex on the prefix-stripped official key, reason) for keys knowingly dropped.
    fill_missing: (regex on our key, fill, reason) for keys of ours that the official files may
        lack, filled with the official construction value ("zeros" or "ones") so the module behaves
        as the official one does after its `strict=False` load.
    optional: the whole component may be absent (connector weights are not in the released
        files); it is then not written, and reported as absent.
    strip_prefix: when set, the prefix removed from a key before `map_tensor` (instead of the
        matched one), for a component that owns several sub-prefixes whose remainders would
        collide (e.g. `…unet_image.input_block_connecters_in.4` vs `…output_block_connecters_in.4`).
    """

    name: str
    prefixes: tuple[str, ...]
    model_class: type
    build: Callable[[OfficialConfig], torch.nn.Module]
    map_tensor: TensorMap
    unused: tuple[tuple[str, str], ...] = ()
    fill_missing: tuple[tuple[str, str, str], ...] = ()
    optional: bool = False
    strip_prefix: str | None = None

    def relative_key(self, key: str, matched_prefix: str) -> str:
        """The key as `map_tensor` receives it, given the prefix of ours it matched."""
        return key[len(self.strip_prefix if self.strip_prefix is not None else matched_prefix):]

    def unused_reason(self, key: str) -> str | None:
        """Why an official key (prefix stripped) is knowingly not converted, or None."""
        for pattern, reason in self.unused:
            if re.fullmatch(pattern, key):
                return reason
        return None

    def missing_fill(self, our_key: str) -> tuple[str, str] | None:
        """(fill, reason) for a key of ours that may be absent from the official files."""
        for pattern, fill, reason in self.fill_missing:
            if re.fullmatch(pattern, our_key):
                return fill, reason
        return None


def registered(name: str) -> dict[str, Any]:
    """`model_class` and `build` of component `name`, from the models' registry."""
    from codi.models.registry import model_component

    component = model_component(name)
    return {"model_class": component.model_class, "build": component.build}


def rename_map(rules: list[tuple[str, str]]) -> TensorMap:
    """A `TensorMap` that renames keys by the first matching (regex, replacement) rule."""
    compiled = [(re.compile(p), r) for p, r in rules]

    def map_tensor(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                return [(pattern.sub(replacement, key), tensor)]
        raise UnknownKeyError(key)

    return map_tensor
