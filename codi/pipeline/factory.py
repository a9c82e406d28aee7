"""The one way the CLI, the studio and evaluation runs open a pipeline: folder + RuntimeOptions."""

from __future__ import annotations

from pathlib import Path

from codi.engine.runtime import RuntimeOptions, quiet_library_logs
from codi.pipeline.codi_pipeline import CoDiPipeline


def open_pipeline(folder: Path, options: RuntimeOptions) -> CoDiPipeline:
    """A pipeline over a converted folder on the device and dtype `options` resolve to.

    Options that only name a device and dtype open the plain float pipeline there; any other
    knob (attention, quantization, offload, budget, ...) hands the options to the pipeline.
    """
    quiet_library_logs()
    device = options.torch_device()
    engine = {} if options.engine_is_default() else {"runtime": options}
    return CoDiPipeline.from_pretrained(
        Path(folder), device=str(device), dtype=options.torch_dtype(device), **engine
    )
