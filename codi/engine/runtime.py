"""How the pipeline runs on this machine: device, precision, attention, quantization, offloading.

One `RuntimeOptions` gathers every knob; it is read from CLI flags and environment variables
(`CODI_DEVICE`, `CODI_DTYPE`, `CODI_ATTENTION`, `CODI_QUANTIZE`, `CODI_OFFLOAD`,
`CODI_MEMORY_BUDGET_GB`) and `apply`-ed to each component when the pipeline opens it. The
defaults: SDPA attention, no quantization, everything resident, fp16 on a GPU, and on a CPU bf16
where it is native (else fp32); `CoDiPipeline.from_pretrained` without options stays float32 on
the CPU (the parity tests' numerics).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codi.engine.quantization import QUANTIZE_MODES, is_quantized, quantize_linears
from codi.errors import CoDiUserError
from codi.models.attention import (
    ATTENTION_BACKENDS,
    resolve_attention_backend,
    set_attention_backend,
)

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
#: What `device` may say: one of DEVICES, or cuda:N.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OFFLOAD_MODES = ("none", "model", "sequential")
#: Components whose `nn.Linear` layers carry most of their weight; quantization applies to them.
QUANTIZABLE = frozenset({
    "unet_image", "unet_audio", "unet_text", "unet_image_connectors", "unet_audio_connectors",
    "unet_text_connectors", "clip_text", "clip_vision", "clap",
})
VAES = frozenset({"vae_image", "vae_audio"})
#: Components that stay float32 when a CPU run is in bf16: the audio decoders. In bf16 the
#: vocoder alone moves CoDi-Nano's waveform by 16% (mean |Δ| / mean |x|; 1.8% with both kept
#: float32) and they are a small share of the compute (docs/benchmarks.md, "bf16 on CPU").
CPU_BF16_KEEP_FP32 = frozenset({"vae_audio", "vocoder"})
#: CPU flags of native bf16 arithmetic (Linux /proc/cpuinfo names).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ENV = {
    "device": "CODI_DEVICE", "dtype": "CODI_DTYPE", "attention": "CODI_ATTENTION",
    "quantize": "CODI_QUANTIZE", "offload": "CODI_OFFLOAD",
    "memory_budget_gb": "CODI_MEMORY_BUDGET_GB",
}


@dataclass
class RuntimeOptions:
    """How and where a pipeline runs (each field has a CLI flag and a CODI_* variable).

    device: auto | cpu | cuda[:N] | mps. dtype: auto (fp16 on a GPU, as the released weights; on
    a CPU bf16 where it is native, else fp32) | fp32 | fp16 | bf16. attention: sdpa | xformers
    (CUDA only; falls back to sdpa) | classic (the official einsum). quantize: none | int8 | int4
    (bitsandbytes, large Linear layers of the UNets and encoders). offload: none (keep what was
    opened) | model (per stage: encoders, then UNets, then decoders; the rest leave the device) |
    sequential (blocks stream to the device one at a time). memory_budget_gb: cap on resident
    weights; least recently used components leave.
    """

    device: str = "auto"
    dtype: str = "auto"
    attention: str = "sdpa"
    quantize: str = "none"
    offload: str = "none"
    memory_budget_gb: float | None = None
    vae_slicing: bool = False
    vae_tiling: bool = False
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise CoDiUserError naming the bad option and the allowed values."""
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise CoDiUserError(f"device {self.device!r}: use auto, cpu, cuda, cuda:N or mps.")
        checks = [
            ("dtype", self.dtype, ("auto", *DTYPES)),
            ("attention", self.attention, ATTENTION_BACKENDS),
            ("quantize", self.quantize, QUANTIZE_MODES),
            ("offload", self.offload, OFFLOAD_MODES),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise CoDiUserError(f"{name} {value!r}: use one of {', '.join(allowed)}.")
        if self.memory_budget_gb is not None and self.memory_budget_gb <= 0:
            raise CoDiUserError("memory budget: give a positive number of GB.")
        if self.quantize != "none" and self.offload == "sequential":
            raise CoDiUserError(
                "quantize and offload=sequential do not combine; use offload=model.")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> RuntimeOptions:
        """Options from CODI_* variables; `overrides` that are not None win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, variable in ENV.items():
            if environ.get(variable):
                values[field] = environ[variable].strip().lower()
        if "memory_budget_gb" in values:
            try:
                values["memory_budget_gb"] = float(values["memory_budget_gb"])
            except ValueError:
                raise CoDiUserError(
                    f"CODI_MEMORY_BUDGET_GB={values['memory_budget_gb']!r} is not a number."
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> RuntimeOptions:
        return dataclasses.replace(self, **changes)

    def engine_is_default(self) -> bool:
        """Only device/dtype differ from the defaults (nothing else to configure)."""
        ignored = {"device": self.device, "dtype": self.dtype}
        return self.replace(**ignored) == RuntimeOptions(**ignored)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def torch_device(self) -> torch.device:
        """The device `auto` resolves to here (cuda, then mps, then cpu)."""
        if self.device != "auto":
            if self.device.startswith("cuda") and not torch.cuda.is_available():
                raise CoDiUserError(
                    f"device {self.device}: no CUDA GPU is available here; use cpu."
                )
            return torch.device(self.device)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def torch_dtype(self, device: torch.device | None = None) -> torch.dtype:
        """`auto`: fp16 on a GPU (the released weights' precision; bf16 is an option); on a CPU
        bf16 when it computes bf16 natively (`cpu_has_native_bf16`), else fp32."""
        if self.dtype == "bf16" and (device is not None or self.device in ("auto", "cpu")):
            if (device or self.torch_device()).type == "cpu" and not cpu_has_native_bf16():
                warn_emulated_bf16()
        if self.dtype != "auto":
            return DTYPES[self.dtype]
        device = device or self.torch_device()
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
        return torch.float16

    def memory_budget_bytes(self) -> float | None:
        return None if self.memory_budget_gb is None else self.memory_budget_gb * 1e9

    def apply(self, name: str, module: nn.Module, device: torch.device) -> nn.Module:
        """Configure a freshly opened component `name` (still on the CPU) for `device`."""
        if self.attention != "sdpa":  # sdpa is what the layers already use
            set_attention_backend(module, resolve_attention_backend(self.attention, device), device)
        if self.quantize != "none" and name in QUANTIZABLE:
            quantize_linears(module, self.quantize, device)
        if name in VAES:
            if self.vae_slicing:
                module.enable_slicing()
            if self.vae_tiling:
                module.enable_tiling()
        if self.channels_last and name.startswith(("unet_image", "unet_audio", "vae")):
            conv_weights_channels_last(module)
        if self.compile and name.startswith("unet"):
            if self.offload == "sequential" or is_quantized(module):
                # streaming hooks move weights inside the forward, and bitsandbytes layers are
                # opaque to the compiler: either would recompile or break the graph every block
                logger.info("%s: torch.compile skipped (quantized or offload=sequential)", name)
            else:
                module.forward = torch.compile(module.forward)
        return module

    def summary(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """What actually runs (after auto and fallbacks), for result metadata and the UI."""
        return {
            **self.to_dict(),
            "device": str(device),
            "dtype": str(dtype).removeprefix("torch."),
            "attention": resolve_attention_backend(self.attention, device),
        }


@functools.cache
def warn_emulated_bf16() -> None:
    """Say once per process that bf16 asked for on a CPU without bf16 instructions is emulated."""
    logger.warning(
        "bf16 on this CPU is emulated (no avx512_bf16/amx_bf16): far slower than fp32 "
        "(docs/benchmarks.md, \"bf16 on a CPU\"); use --dtype auto or fp32.")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16), read from the flags of
    /proc/cpuinfo (or `cpuinfo`, for tests); False where that file does not exist. Without them
    PyTorch emulates bf16 on a CPU, which is slower than fp32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags")
             for f in line.partition(":")[2].split()}
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def component_dtype(name: str, dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype component `name` opens in when the run is in `dtype` on `device`: the run's,
    except the audio decoders of a bf16 CPU run (CPU_BF16_KEEP_FP32), which stay float32."""
    if dtype == torch.bfloat16 and device.type == "cpu" and name in CPU_BF16_KEEP_FP32:
        return torch.float32
    return dtype


def conv_weights_channels_last(module: nn.Module) -> int:
    """Channels-last layout for the 4-D weights of `module`'s 2-D (transposed) convolutions;
    returns how many were changed.

    `Module.to(memory_format=channels_last)` would also reach the 5-D Conv3d weights of the video
    layers (which that format refuses) and every quantized parameter; convolutions given a
    channels-last weight run channels-last on CUDA, so the weights are all that needs changing.
    """
    count = 0
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.dim() == 4:
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
            count += 1
    return count


def quiet_library_logs() -> None:
    """Hide diffusers' and transformers' loading bars and dtype chatter (our progress shows)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def add_runtime_arguments(parser) -> None:
    """--device/--dtype/--attention/--quantize/--offload/--memory-budget-gb/... (env fallbacks)."""
    group = parser.add_argument_group("runtime (environment fallbacks: CODI_DEVICE, ...)")
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps [CODI_DEVICE]")
    group.add_argument("--dtype", choices=("auto", *DTYPES),
                       help="auto = fp16 on a GPU; on a CPU bf16 where native, else fp32 "
                            "[CODI_DTYPE]")
    group.add_argument("--attention", choices=ATTENTION_BACKENDS,
                       help="sdpa (default), xformers (CUDA, falls back to sdpa), classic "
                            "(official einsum) [CODI_ATTENTION]")
    group.add_argument("--quantize", choices=QUANTIZE_MODES,
                       help="int8/int4 weights for the large layers (bitsandbytes) [CODI_QUANTIZE]")
    group.add_argument("--offload", choices=OFFLOAD_MODES,
                       help="none (default), model (stage by stage) or sequential (block by "
                            "block) [CODI_OFFLOAD]")
    group.add_argument("--memory-budget-gb", type=float, metavar="GB",
                       help="cap on resident weights [CODI_MEMORY_BUDGET_GB]")
    group.add_argument("--vae-slicing", action="store_true", default=None,
                       help="decode one image/frame at a time")
    group.add_argument("--vae-tiling", action="store_true", default=None,
                       help="decode large images in tiles")
    group.add_argument("--channels-last", action="store_true", default=None)
    group.add_argument("--compile", action="store_true", default=None, help="torch.compile UNets")


def options_from_args(args) -> RuntimeOptions:
    """RuntimeOptions from parsed flags, falling back to the environment, then to the defaults."""
    names = ("device", "dtype", "attention", "quantize", "offload", "memory_budget_gb",
             "vae_slicing", "vae_tiling", "channels_last", "compile")
    return RuntimeOptions.from_env(**{n: getattr(args, n, None) for n in names})
