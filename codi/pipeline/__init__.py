"""The any-to-any pipeline: request → decoded inputs → conditions → joint denoising → outputs.

`codi_pipeline.CoDiPipeline` runs the algorithm; `factory.open_pipeline` is how every front end
opens one; the other modules are its steps (inputs, conditioning, sampling, decoding) and its
plain data (request, result).
"""

from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.factory import open_pipeline
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.pipeline.result import GenerationResult

__all__ = [
    "CoDiPipeline", "ConditionInput", "GenerationRequest", "GenerationResult",
    "GenerationSettings", "open_pipeline",
]
