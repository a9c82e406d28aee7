"""Hugging Face ZeroGPU support: `@spaces.GPU(duration=...)` where `spaces` exists, else a no-op.

On a ZeroGPU Space a GPU is attached only while a decorated function runs, for at most its
`duration` seconds; `estimate_gpu_seconds` sizes that from the request. Elsewhere (no `spaces`
package, or not on ZeroGPU) the decorator returns the function unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from codi.engine.runtime import RuntimeOptions
from codi.pipeline.request import GenerationRequest

try:
    import spaces
except ImportError:  # not on Hugging Face Spaces
    spaces = None

#: Seconds per denoising step and sample at 256 px on a ZeroGPU slice (H200 class), per output;
#: a video costs its frames times an image. Deliberately generous: running out aborts the job.
STEP_SECONDS = {"image": 0.06, "audio": 0.08, "text": 0.02, "video_frame": 0.05}
#: Moving the weights to the GPU, encoding the inputs and decoding the outputs.
OVERHEAD_SECONDS = 20
MIN_SECONDS, MAX_SECONDS = 30, 300


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space (the platform sets SPACES_ZERO_GPU)."""
    return spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def zerogpu_runtime(options: RuntimeOptions) -> RuntimeOptions:
    """On ZeroGPU, every component is placed on CUDA at start-up, as ZeroGPU requires (the
    GPU itself is attached only inside `@spaces.GPU`): device cuda, nothing offloaded, no
    memory budget. Elsewhere `options` unchanged."""
    if not on_zerogpu():
        return options
    return replace(options, device="cuda", offload="none", memory_budget_gb=None)


def estimate_gpu_seconds(request: GenerationRequest) -> int:
    """A GPU time budget for one request: steps × per-step cost of its outputs, plus overhead."""
    s = request.settings
    area = (s.image_size / 256) ** 2
    per_step = 0.0
    for output in request.outputs:
        if output == "video":
            per_step += STEP_SECONDS["video_frame"] * s.num_frames * area
        else:
            per_step += STEP_SECONDS[output] * (area if output == "image" else 1.0)
    passes = 1 if s.guidance_scale == 1.0 else 2
    seconds = OVERHEAD_SECONDS + s.steps * per_step * passes * s.num_samples
    return int(min(MAX_SECONDS, max(MIN_SECONDS, seconds)))


def gpu_task(duration: Callable[..., int]) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=duration)` where `spaces` is installed (it is itself a no-op off
    ZeroGPU); the identity elsewhere. `duration` receives the decorated function's arguments.
    """
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if spaces is None:
            return fn
        return spaces.GPU(duration=duration)(fn)

    return decorate
