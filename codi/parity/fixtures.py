"""Reading a parity fixture folder (format: shared/parity/README.md)."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file

from codi.models.official_config import OfficialConfig


class SkipFixture(Exception):
    """Raised by a check that cannot run this fixture (the reason is reported)."""


class MissingParameter(Exception):
    """Raised when `index.json` lacks a call argument a check needs; the fixture fails with the
    key's path (`extra.params.time`), so nothing runs on a guessed value."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass
class Comparison:
    """One tensor of ours against the official one, with its tolerance (max abs error)."""

    name: str
    actual: torch.Tensor
    expected: torch.Tensor
    atol: float

    def max_abs_error(self) -> float:
        if tuple(self.actual.shape) != tuple(self.expected.shape):
            return float("inf")
        if self.actual.numel() == 0:
            return 0.0
        diff = self.actual.detach().double().cpu() - self.expected.detach().double().cpu()
        return float(diff.abs().max())


@dataclass
class FixtureContext:
    """What a check gets: the fixture's tensors, its index entry and our converted models."""

    name: str
    tensors: dict[str, torch.Tensor]
    entry: dict[str, Any]
    official: OfficialConfig
    vocab_dir: Path
    load_model: Callable[[str], torch.nn.Module] = field(repr=False)
    fixture_dir: Path | None = None

    def model(self, component: str) -> torch.nn.Module:
        """Our component (e.g. "unet_image"), converted from the fixture weights, fp32, eval."""
        return self.load_model(component)

    @property
    def model_folder(self) -> Path | None:
        """The folder the fixture weights were converted into (for whole-pipeline checks)."""
        return getattr(self.load_model, "folder", None)

    @property
    def params(self) -> dict[str, Any]:
        """The official call's arguments (`extra.params`), or {}."""
        return self.entry.get("extra", {}).get("params", {})

    def param(self, key: str) -> Any:
        """One argument of the official call (`extra.params.<key>`); absent, the fixture fails."""
        if key not in self.params:
            raise MissingParameter(f"extra.params.{key}")
        return self.params[key]

    def extra(self, key: str) -> Any:
        """A value the official run recorded (`extra.<key>`: prompts, sampled strings, ...)."""
        extra = self.entry.get("extra", {})
        if key not in extra:
            raise MissingParameter(f"extra.{key}")
        return extra[key]

    def expected_shape(self, tensor: str) -> tuple[int, ...]:
        """The shape `index.json` lists for a stored tensor: what the official call produced."""
        listed = self.entry.get("tensors", {}).get(tensor, {})
        if "shape" not in listed:
            raise MissingParameter(f"tensors.{tensor}.shape")
        return tuple(int(n) for n in listed["shape"])

    def torch_seed(self) -> int:
        """The `torch.manual_seed` of the official call: `extra.params.torch_manual_seed`, or the
        one `torch.manual_seed(N)` written in `official_call` (never a tensor's name)."""
        if "torch_manual_seed" in self.params:
            return int(self.params["torch_manual_seed"])
        seeds = re.findall(r"torch\.manual_seed\((\d+)\)", self.entry.get("official_call", ""))
        if len(seeds) != 1:
            raise MissingParameter("extra.params.torch_manual_seed")
        return int(seeds[0])


def read_index(fixture_dir: Path) -> dict[str, Any]:
    """`index.json` of a fixture folder."""
    return json.loads((Path(fixture_dir) / "index.json").read_text())


def official_config_of(fixture_dir: Path) -> OfficialConfig:
    """The official configuration of the fixture folder's tiny model."""
    return OfficialConfig.from_fixture_meta(read_index(fixture_dir)["_meta"])


def load_weights(fixture_dir: Path) -> dict[str, torch.Tensor]:
    """The fixture model's official-layout state dict; parameters upcast to float32."""
    index = read_index(fixture_dir)
    name = index["_meta"].get("weights_file", "tiny_codi_weights.safetensors.gz")
    path = Path(fixture_dir) / name
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    state = load_safetensors_bytes(raw)
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}


def load_fixture_tensors(fixture_dir: Path, entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of one fixture file."""
    return load_file(str(Path(fixture_dir) / entry["file"]))
