"""Mapping official state dicts onto our components, streamed one source file at a time.

`Converter.feed()` takes one official state dict (one memory-mapped file), maps every key through
the component specs and writes each component as soon as it is complete. Tensors stay mapped until
they are written one by one (cast on the way), so the converter itself holds little more than one
tensor in RAM; the mapped pages are page cache the kernel can drop.
A component that a later file adds keys to is merged and rewritten. `finish()` fills keys the
official files lack (with the official construction value, where the spec allows it), writes the
rest, and leaves a full report. With `dst=None` nothing is written: that is the manifest check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from codi.convert.registry import SCHEDULE_BUFFERS, all_specs, owner_of
from codi.convert.spec import ComponentSpec, UnknownKeyError
from codi.convert.writer import expected_tensors, write_component, write_model_index
from codi.models.official_config import OfficialConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class ConversionReport:
    """What happened to every official key and every key of ours."""

    consumed: dict[str, str] = field(default_factory=dict)  # official key → component
    unused: dict[str, str] = field(default_factory=dict)  # official key → reason
    unknown: list[str] = field(default_factory=list)  # official keys nobody maps
    filled: dict[str, dict[str, str]] = field(default_factory=dict)  # component → key → reason
    absent: dict[str, str] = field(default_factory=dict)  # optional component → reason
    written: dict[str, int] = field(default_factory=dict)  # component → tensor count
    sha256: dict[str, str] = field(default_factory=dict)  # component → weights file hash
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unknown

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "written": self.written,
            "absent": self.absent,
            "filled_with_official_init": self.filled,
            "unused": self.unused,
            "unknown": self.unknown,
            "errors": self.errors,
            "consumed": self.consumed,
        }


class Converter:
    """Streams official state dicts into our component folders (or only checks them)."""

    def __init__(
        self,
        official: OfficialConfig,
        dst: Path | None,
        dtype: torch.dtype | None = None,
        specs: Iterable[ComponentSpec] | None = None,
    ) -> None:
        self.official = official
        self.dst = Path(dst) if dst is not None else None
        self.dtype = dtype
        self.specs = {spec.name: spec for spec in (specs or all_specs())}
        self.report = ConversionReport()
        self._pending: dict[str, dict[str, torch.Tensor]] = {}
        self._sources: dict[str, set[str]] = {}
        self._done: set[str] = set()
        self._expected: dict[str, dict[str, torch.Tensor]] = {}

    def expected(self, name: str) -> dict[str, torch.Tensor]:
        """Our component's state dict on the meta device (keys, shapes, dtypes)."""
        if name not in self._expected:
            self._expected[name] = expected_tensors(self.specs[name], self.official)
        return self._expected[name]

    def feed(self, source: str, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Map every key of one official file; write the components it completes.

        A component is written now when it is complete, or when all it lacks has an official
        init (a later file that adds keys to it rewrites it). What stays pending is copied out of
        this file's memory map: one mapped tensor kept alive would keep the whole file mapped
        (the released encoders file is 6 GB; the vocoder lacks two filled keys).
        """
        touched: set[str] = set()
        for key, tensor in state_dict.items():
            name = self._map_one(key, tensor)
            if name is not None:
                touched.add(name)
                self._sources.setdefault(name, set()).add(source)
        for name in sorted(touched):
            if name in self._done or self._fillable(name):
                self._flush(name)
        for name, tensors in self._pending.items():
            self._pending[name] = {key: value.clone() for key, value in tensors.items()}

    def finish(self) -> ConversionReport:
        """Fill or report what the files lacked, write the rest, and return the report."""
        for name, spec in self.specs.items():
            if name in self._done:
                continue
            if name not in self._pending:
                reason = (
                    "no weights for it in the official files"
                    + (" (optional: skipped at run time, as the official code effectively does)"
                       if spec.optional else "")
                )
                if spec.optional:
                    self.report.absent[name] = reason
                else:
                    self.report.errors.append(f"{name}: {reason}")
                continue
            self._flush(name)
        if self.dst is not None and self.report.ok:
            written = [self.specs[n] for n in sorted(self.report.written)]
            write_model_index(self.dst, self.official, written, self.report.sha256)
            (self.dst / "conversion_report.json").write_text(
                json.dumps(self.report.to_json(), indent=1, sort_keys=True)
            )
        return self.report

    # -- internals ------------------------------------------------------------------------------

    def _map_one(self, key: str, tensor: torch.Tensor) -> str | None:
        owner = owner_of(key, self.specs.values())
        if owner is None:
            if key in SCHEDULE_BUFFERS:
                self.report.unused[key] = "diffusion schedule: recomputed by the scheduler"
            else:
                self.report.unknown.append(key)
            return None
        spec, local = owner
        reason = spec.unused_reason(local)
        if reason is not None:
            self.report.unused[key] = reason
            return None
        try:
            mapped = spec.map_tensor(local, tensor)
        except UnknownKeyError:
            self.report.unknown.append(key)
            return None
        expected = self.expected(spec.name)
        pending = self._pending.setdefault(spec.name, {})
        for our_key, value in mapped:
            if our_key not in expected:
                self.report.errors.append(f"{spec.name}: {key} maps to unknown key {our_key}")
            elif tuple(value.shape) != tuple(expected[our_key].shape):
                self.report.errors.append(
                    f"{spec.name}: {key} → {our_key} has shape {list(value.shape)}, "
                    f"expected {list(expected[our_key].shape)}"
                )
            else:
                pending[our_key] = value  # still memory-mapped: cast only when written
        self.report.consumed[key] = spec.name
        return spec.name

    def _missing(self, name: str) -> list[str]:
        have = self._pending.get(name, {})
        return [k for k in self.expected(name) if k not in have]

    def _fillable(self, name: str) -> bool:
        """Everything the component still lacks has an official init."""
        return all(self.specs[name].missing_fill(key) for key in self._missing(name))

    def _flush(self, name: str) -> None:
        """Fill what may be filled, check completeness, write the component and free it."""
        spec = self.specs[name]
        tensors = self._pending.pop(name, {})
        filled = self.report.filled.pop(name, {})
        for key in tensors:  # written earlier with its official init, now given by a later file
            filled.pop(key, None)
        if filled:
            self.report.filled[name] = filled
        if name in self._done and self.dst is not None:
            tensors = {**_read_written(self.dst / name), **tensors}
        expected = self.expected(name)
        for key in [k for k in expected if k not in tensors]:
            fill = spec.missing_fill(key)
            if fill is None:
                self.report.errors.append(f"{name}: {key} is missing and has no official init")
                continue
            value, reason = fill
            make = torch.zeros if value == "zeros" else torch.ones
            tensors[key] = make(expected[key].shape, dtype=expected[key].dtype)
            self.report.filled.setdefault(name, {})[key] = reason
        self._done.add(name)
        self.report.written[name] = len(tensors)
        if self.dst is not None and not any(e.startswith(f"{name}:") for e in self.report.errors):
            self.report.sha256[name] = write_component(
                self.dst / name, spec, self.official, tensors, self.dtype
            )


def _read_written(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def convert(
    sources: Iterable[tuple[str, Mapping[str, torch.Tensor]]],
    official: OfficialConfig,
    dst: Path | None,
    dtype: torch.dtype | None = None,
    specs: Iterable[ComponentSpec] | None = None,
) -> ConversionReport:
    """Convert (or, with dst=None, only check) official state dicts, one source at a time."""
    converter = Converter(official, dst, dtype, specs)
    for label, state_dict in sources:
        converter.feed(label, state_dict)
        del state_dict
    return converter.finish()
