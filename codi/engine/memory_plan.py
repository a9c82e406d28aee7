"""`python -m codi plan`: which components a request needs, their bytes, and the memory peak.

Sizes come from the modules built on the meta device (nothing is allocated), either for a
converted folder's configs or for the real CoDi (`OfficialConfig.full()`), so the full-size plan
needs no weights. The peak counts weights only (activations are not included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from codi.engine.quantization import KEEP_PRECISION, MIN_FEATURES
from codi.engine.residency import IMAGE_ONLY, streamed_blocks
from codi.engine.runtime import QUANTIZABLE

STAGES = ("encode", "denoise", "decode")
#: Bytes per weight for each plan precision; int8/int4 apply to the large Linear layers only.
PRECISIONS = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 2, "int4": 2}
QUANTIZED_BYTES = {"int8": 1.0, "int4": 0.5 + 4 / 64}


@dataclass
class ComponentPlan:
    """One component of a plan: its stage, parameters and bytes at the plan's precision."""

    name: str
    stage: str
    variant: str | None
    params: int
    nbytes: float
    streamed_bytes: float  # bytes of its blocks that sequential offload streams
    largest_block: float  # bytes of the largest of those blocks
    pinned: bool = False  # quantized: stays on the device through every stage (residency.py)


@dataclass
class MemoryPlan:
    components: list[ComponentPlan]
    precision: str

    @property
    def total_bytes(self) -> float:
        """Every distinct component once (a variation's VAE serves two stages)."""
        return sum({c.name: c.nbytes for c in self.components}.values())

    def stage_bytes(self, stage: str) -> float:
        return sum(c.nbytes for c in self.components if c.stage == stage)

    def peak_bytes(self, offload: str = "none") -> float:
        """Weights that must coexist: all (none), the largest stage (model: plus every pinned,
        i.e. quantized, component, which no stage change moves), or per stage the non-streamed
        weights plus one block (sequential)."""
        if offload == "none":
            return self.total_bytes
        if offload == "model":
            pinned = sum(c.nbytes for c in self.components if c.pinned)
            return pinned + max(
                sum(c.nbytes for c in self.components if c.stage == s and not c.pinned)
                for s in STAGES
            )
        return max(
            sum(c.nbytes - c.streamed_bytes for c in self.components if c.stage == s)
            + max((c.largest_block for c in self.components if c.stage == s), default=0)
            for s in STAGES
        )


def meta_full_size(name: str) -> nn.Module:
    """Component `name` of the real CoDi, on the meta device."""
    from codi.models.official_config import OfficialConfig
    from codi.models.registry import model_component

    with torch.device("meta"):
        return model_component(name).build(OfficialConfig.full())


def meta_from_folder(folder: Path, name: str) -> nn.Module:
    """Component `name` of a converted folder, built from its config.json on the meta device."""
    from diffusers import ModelMixin

    from codi.models.registry import model_component

    cls = model_component(name).model_class
    with torch.device("meta"):
        if issubclass(cls, ModelMixin):
            return cls.from_config(cls.load_config(Path(folder) / name))
        return cls(cls.config_class.from_pretrained(Path(folder) / name))


def _skipped(key: str, skip: str | None) -> bool:
    """Whether `key` lies under a sub-module named `skip` (the video layers: "temporal")."""
    return skip is not None and f".{skip}." in f".{key}"


def _tensor_bytes(module: nn.Module, name: str, precision: str, skip: str | None) -> float:
    """Bytes of `module`'s parameters and buffers at `precision`, leaving out names containing
    `skip`; the large Linear weights of quantizable components count at their quantized size."""
    quantized: set[int] = set()
    if precision in QUANTIZED_BYTES and name in QUANTIZABLE:
        quantized = {
            id(m.weight) for path, m in module.named_modules()
            if type(m) is nn.Linear and min(m.in_features, m.out_features) >= MIN_FEATURES
            and not any(part in KEEP_PRECISION for part in path.split(".")[:-1])
        }
    total = 0.0
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    for key, tensor in tensors:
        if _skipped(key, skip):
            continue
        if id(tensor) in quantized:
            total += tensor.numel() * QUANTIZED_BYTES[precision]
        elif tensor.is_floating_point():
            total += tensor.numel() * PRECISIONS[precision]
        else:
            total += tensor.numel() * tensor.element_size()
    return total


def plan_request(
    inputs: list[str],
    outputs: list[str],
    precision: str = "fp16",
    folder: Path | None = None,
    *,
    negative_text: bool = False,
    connectors: bool = True,
    starts: Sequence[str] = (),
) -> MemoryPlan:
    """The plan for a request: full-size CoDi when `folder` is None, else that converted folder.

    The components are the pipeline's own (`codi.pipeline.components.needed_components`).
    """
    from codi.pipeline.components import needed_components
    from codi.store.weights import available_components

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    available = set(available_components(folder)) if folder is not None else set()
    plans = []
    needed = needed_components(inputs, outputs, available, negative_text=negative_text,
                               connectors=connectors, starts=starts)
    for name, stage, variant in needed:
        module = meta_from_folder(folder, name) if folder is not None else meta_full_size(name)
        skip = "temporal" if variant == IMAGE_ONLY else None
        params = sum(
            p.numel() for k, p in module.named_parameters() if not _skipped(k, skip)
        )
        blocks = [_tensor_bytes(b, name, precision, skip) for b in streamed_blocks(module)]
        plans.append(ComponentPlan(
            name, stage, variant, params, _tensor_bytes(module, name, precision, skip),
            sum(blocks), max(blocks, default=0.0),
            pinned=precision in QUANTIZED_BYTES and name in QUANTIZABLE,
        ))
    return MemoryPlan(plans, precision)


def format_plan(plan: MemoryPlan, title: str) -> str:
    """The plan as a plain-text table plus totals."""
    lines = [title, f"{'component':24s} {'stage':8s} {'params':>14s} {plan.precision + ' GB':>9s}"]
    for c in plan.components:
        label = c.name + (" (no video layers)" if c.variant == IMAGE_ONLY else "")
        lines.append(f"{label:24s} {c.stage:8s} {c.params:14,d} {c.nbytes / 1e9:9.3f}")
    params = sum(c.params for c in plan.components)
    lines.append(f"{'total':24s} {'':8s} {params:14,d} {plan.total_bytes / 1e9:9.3f}")
    lines.append("estimated peak (weights only):")
    for offload in ("none", "model", "sequential"):
        if offload == "sequential" and plan.precision in QUANTIZED_BYTES:
            lines.append(f"  offload={offload:10s}     n/a (quantized weights do not stream)")
        else:
            lines.append(f"  offload={offload:10s} {plan.peak_bytes(offload) / 1e9:7.3f} GB")
    return "\n".join(lines)
