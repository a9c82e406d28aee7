"""Which components sit on the compute device, per request, within a memory budget.

The pipeline asks for components by name; the `ResidencyManager` opens them on first use,
configures them (`RuntimeOptions.apply`), and keeps them resident, least recently used first out,
while the resident weights fit the budget. Requests run in stages (encoders → UNets → decoders):
with offload "model" a stage's components leave the device when the next stage starts, so the
peak is the largest stage. A component that leaves goes to the CPU when the device is a GPU (a
quick move back), or is dropped (re-opened from the memory-mapped files) when the device is the
CPU. With offload "sequential", the big blocks of each component live on the CPU and stream to
the device one at a time.

Quantized components are pinned: once on the device they stay there (stage changes and the
budget pass them over) until everything is dropped (`clear`, the OOM retry). bitsandbytes keeps
part of its quantized state outside the parameters that `Module.to` moves, so a CPU round trip
would leave device memory behind or re-quantize; re-opening one per stage would repeat the
quantization on every request. `memory_plan` counts them in every stage's peak.

"unet_image" opens without its temporal (video) layers when only images are asked for: image
latents never run them, so the result is bit-identical and 1.1 GB (fp16) lighter at full size.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from codi.engine.quantization import is_quantized
from codi.engine.runtime import OFFLOAD_MODES, RuntimeOptions

logger = logging.getLogger(__name__)

#: A component opened without its video layers (see the module docstring).
IMAGE_ONLY = "image_only"


@dataclass
class Resident:
    """One opened component and where it is."""

    module: nn.Module
    variant: str | None
    on_device: bool
    nbytes: int
    pinned: bool = False  # quantized: never moved off the device (see the module docstring)


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers as stored (quantized weights count as such)."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type != "meta")


def streamed_blocks(module: nn.Module) -> list[nn.Module]:
    """The elements of the outermost ModuleLists: the blocks that sequential offload streams."""
    blocks: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        for child in m.children():
            if isinstance(child, nn.ModuleList):
                blocks.extend(child)
            else:
                visit(child)

    visit(module)
    return blocks


def _to_device(value, device: torch.device):
    """Tensors move; anything else (lists a block appends to, modules) is passed as is."""
    return value.to(device) if isinstance(value, torch.Tensor) else value


def attach_streaming(module: nn.Module, device: torch.device) -> nn.Module:
    """Sequential offload: everything but the big blocks on `device`; each block comes to the
    device just before its forward and goes back to the CPU right after."""
    module.to(device)
    for block in streamed_blocks(module):
        block.to("cpu")

        def before(block_, args, kwargs):
            block_.to(device)
            moved = tuple(_to_device(a, device) for a in args)
            return moved, {k: _to_device(v, device) for k, v in kwargs.items()}

        def after(block_, args, output):
            block_.to("cpu")
            return output

        block.register_forward_pre_hook(before, with_kwargs=True)
        block.register_forward_hook(after)
    return module


class ResidencyManager:
    """Opens components on demand and keeps the resident set within the budget (LRU)."""

    def __init__(
        self,
        load: Callable[[str], nn.Module],
        device: torch.device,
        options: RuntimeOptions | None = None,
        load_variant: Callable[[str, str], nn.Module] | None = None,
    ) -> None:
        self._load = load
        self._load_variant = load_variant
        self.device = torch.device(device)
        self.options = options or RuntimeOptions(device=str(self.device))
        self._entries: OrderedDict[str, Resident] = OrderedDict()
        self._stage: set[str] = set()
        self._lock = threading.RLock()
        #: Every (name, variant) opened, in order: what a request actually loaded.
        self.opened: list[tuple[str, str | None]] = []

    # -- queries --------------------------------------------------------------------------

    def loaded(self) -> list[str]:
        """Opened components (on the device or parked on the CPU)."""
        return list(self._entries)

    def resident(self) -> list[str]:
        """Components on the compute device."""
        return [n for n, e in self._entries.items() if e.on_device]

    def resident_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values() if e.on_device)

    def variant_of(self, name: str) -> str | None:
        return self._entries[name].variant

    # -- the one entry point --------------------------------------------------------------

    def get(self, name: str, variant: str | None = None) -> nn.Module:
        """Component `name` on the device; `variant` IMAGE_ONLY accepts the image-only UNet."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.variant is not None and entry.variant != variant:
                self.drop(name)  # a lighter variant cannot serve this request
                entry = None
            if entry is None:
                entry = self._open(name, variant)
            elif not entry.on_device:
                self._make_room(entry.nbytes, keep={name})
                entry.module.to(self.device)
                entry.on_device = True
            self._entries.move_to_end(name)
            return entry.module

    def _open(self, name: str, variant: str | None) -> Resident:
        if variant is not None and self._load_variant is not None:
            module = self._load_variant(name, variant)
        else:
            module, variant = self._load(name), None
        module = self.options.apply(name, module.eval(), self.device)
        nbytes = module_bytes(module)
        self._make_room(nbytes, keep={name})
        if self.options.offload == "sequential":
            attach_streaming(module, self.device)
        else:
            module.to(self.device)
        entry = Resident(module, variant, True, nbytes, pinned=is_quantized(module))
        self._entries[name] = entry
        self.opened.append((name, variant))
        return entry

    # -- stages and eviction --------------------------------------------------------------

    def stage(self, names: Iterable[str]) -> None:
        """A new stage needs `names`; with offload "model", every other component leaves."""
        with self._lock:
            self._stage = set(names)
            if self.options.offload == "model":
                for name in self.resident():
                    if name not in self._stage:
                        self.evict(name)

    def _make_room(self, incoming: int, keep: set[str]) -> None:
        budget = self.options.memory_budget_bytes()
        if budget is None:
            return
        for name in self.resident():  # least recently used first
            if self.resident_bytes() + incoming <= budget:
                return
            if name not in keep and name not in self._stage:
                self.evict(name)
        if self.resident_bytes() + incoming > budget:
            logger.info("resident weights exceed the %.2f GB budget", budget / 1e9)

    def evict(self, name: str) -> None:
        """Take a component off the device: to the CPU on a GPU, else drop it; a pinned
        (quantized) one stays."""
        entry = self._entries[name]
        if entry.pinned:
            return
        if self.device.type != "cpu" and self.options.offload != "sequential":
            entry.module.to("cpu")
            entry.on_device = False
        else:
            self.drop(name)
        _release_device_memory(self.device)

    def drop(self, name: str) -> None:
        """Forget a component entirely (it is re-opened on next use)."""
        self._entries.pop(name, None)
        gc.collect()

    def clear(self) -> None:
        """Drop every component."""
        with self._lock:
            self._entries.clear()
            self._stage = set()
            gc.collect()
            _release_device_memory(self.device)

    def escalate(self) -> str | None:
        """Switch to the next stronger offload mode after running out of memory; returns it, or
        None when already at the strongest. Everything is dropped so the retry starts clean."""
        with self._lock:
            order = list(OFFLOAD_MODES)
            current = order.index(self.options.offload)
            stronger = order[current + 1:]
            if self.options.quantize != "none":
                stronger = [m for m in stronger if m != "sequential"]
            self.clear()
            if not stronger:
                return None
            self.options = self.options.replace(offload=stronger[0])
            return stronger[0]


def _release_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
