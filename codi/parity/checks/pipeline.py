"""Whole `model_module.inference` runs (fixtures pipeline_*) through `CoDiPipeline`.

The request is rebuilt from the fixture's `inference_kwargs`, run with `official_randomness` and the
fixture's two seeds (torch and NumPy), step by step so every intermediate the fixture stores can be
compared.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from codi.media.limits import MediaLimits
from codi.parity.checks.optimus import texts_compared
from codi.parity.checks.sampler import indexed
from codi.parity.checks.trajectory import (
    OfficialLoop,
    amplified_step_errors,
    random_signs,
    step_errors,
)
from codi.parity.fixtures import (
    Comparison,
    FixtureContext,
    MissingParameter,
    SkipFixture,
    load_fixture_tensors,
    read_index,
)
from codi.parity.tolerances import (
    EXACT,
    FORWARD_ATOL,
    PIXEL_ATOL,
    TEXT_TRAJECTORY_ATOL,
    TRAJECTORY_ATOL,
)
from codi.pipeline.codi_pipeline import CoDiPipeline, Conditioning
from codi.pipeline.conditioning import RandomSources
from codi.pipeline.inputs import decode_inputs
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.pipeline.result import GenerationResult
from codi.pipeline.sampling import StepResult
from codi.store.tokenizers import tokenizers_from_vocab
from codi.store.weights import available_components


def fixture_pipeline(ctx: FixtureContext, dtype: torch.dtype = torch.float32) -> CoDiPipeline:
    """A pipeline over the fixture's converted folder, sharing the already opened components
    (float32), or with float64 copies of them."""
    folder = ctx.model_folder
    if folder is None:
        raise SkipFixture("no converted model folder in this context")
    index = json.loads((Path(folder) / "model_index.json").read_text())
    load = ctx.model if dtype == torch.float32 else (
        lambda name: copy.deepcopy(ctx.model(name)).to(dtype)
    )
    return CoDiPipeline(
        load_component=load,
        available=set(available_components(folder)),
        tokenizers=tokenizers_from_vocab(ctx.vocab_dir),
        codi_constants=index["codi"],
        model_info={"model_id": "parity fixture"},
        dtype=dtype,
    )


def condition_value(ctx: FixtureContext, value: str, kind: str):
    """A condition of `inference_kwargs`: a prompt, or the name of a stored tensor."""
    if kind == "text":
        return value
    if "." in value:
        fixture, name = value.split(".", 1)
        entry = read_index(ctx.fixture_dir)[fixture]
        tensor = load_fixture_tensors(ctx.fixture_dir, entry)[name]
    else:
        tensor = ctx.tensors[value]
    if kind == "image":
        return Image.fromarray(tensor.numpy())
    return tensor.numpy()


#: `model_module.inference`'s own default for an omitted `mix_weight`: equal weights
#: (reference §3, docs/quirks.md).
OFFICIAL_MIX_WEIGHT = {"video": 1, "audio": 1, "text": 1, "image": 1}


def inference_argument(ctx: FixtureContext, key: str):
    """One argument of the official `inference` call (`extra.params.inference_kwargs.<key>`)."""
    kwargs = ctx.param("inference_kwargs")
    if key not in kwargs:
        raise MissingParameter(f"extra.params.inference_kwargs.{key}")
    return kwargs[key]


def fixture_request(ctx: FixtureContext) -> GenerationRequest:
    """The official call as a GenerationRequest; every argument the outputs depend on must be in
    the index (the image size only for image/video outputs, the frames only for video)."""
    outputs = list(inference_argument(ctx, "xtype"))
    kinds = list(inference_argument(ctx, "condition_types"))
    values = list(inference_argument(ctx, "condition"))
    weights = ctx.param("inference_kwargs").get("mix_weight", OFFICIAL_MIX_WEIGHT)
    if len(values) != len(kinds):
        raise MissingParameter("extra.params.inference_kwargs.condition (one per condition type)")
    if missing := [kind for kind in kinds if kind not in weights]:
        raise MissingParameter(f"extra.params.inference_kwargs.mix_weight.{missing[0]}")
    inputs = [
        ConditionInput(kind, condition_value(ctx, value, kind), float(weights[kind]))
        for value, kind in zip(values, kinds, strict=True)
    ]
    sizes = {}
    if {"image", "video"} & set(outputs):
        sizes["image_size"] = int(inference_argument(ctx, "image_size"))
    if "video" in outputs:
        sizes["num_frames"] = int(inference_argument(ctx, "num_frames"))
    settings = GenerationSettings(
        steps=int(inference_argument(ctx, "ddim_steps")),
        guidance_scale=float(inference_argument(ctx, "scale")),
        num_samples=int(inference_argument(ctx, "n_samples")),
        seed=int(ctx.param("torch_manual_seed")),
        official_randomness=True,
        **sizes,
    )
    return GenerationRequest(inputs, outputs, settings)


@dataclass
class PipelineRun:
    """Every intermediate of one run, as the fixture stores them."""

    conditioning: Conditioning
    latents: dict[str, torch.Tensor]
    steps: list[StepResult]
    final: dict[str, torch.Tensor]
    result: GenerationResult
    #: The torch generator's state when decoding began (text sampling draws from there on).
    decode_rng_state: torch.Tensor


def run_steps(pipe: CoDiPipeline, request: GenerationRequest, numpy_seed: int) -> PipelineRun:
    """The pipeline's steps one by one, with the official random choices: the torch stream from
    the request's seed, NumPy's (CLAP crops of long audio) from the call's own NumPy seed."""
    settings = request.settings
    rng = RandomSources(
        torch.Generator().manual_seed(settings.seed), np.random.RandomState(numpy_seed), True
    )
    inputs = decode_inputs(request.inputs, MediaLimits())
    conditioning = pipe.encode_conditions(inputs, settings, rng)
    latents = pipe.prepare_latents(request.outputs, settings, rng.torch_generator)
    steps: list[StepResult] = []
    final = pipe.denoise(latents, conditioning.context, settings, rng, on_result=steps.append)
    state = rng.torch_generator.get_state()
    result = pipe.decode(final, settings, rng.torch_generator)
    return PipelineRun(conditioning, latents, steps, final, result, state)


def trajectory_distance(a: PipelineRun, b: PipelineRun) -> dict[str, float]:
    """Per output, the largest difference between two runs' trajectories."""
    return {
        m: float((torch.stack([s.latents[m] for s in a.steps])
                  - torch.stack([s.latents[m] for s in b.steps])).abs().max())
        for m in a.final
    }


def rounding_runs(
    ctx: FixtureContext, exact_pipe: CoDiPipeline, request: GenerationRequest, numpy_seed: int
) -> list[PipelineRun]:
    """The same run under float32 rounding alone changed: on another number of threads (other
    kernel reductions), and with every network in float64.

    Guidance 7.5 on random weights can make a trajectory ill-conditioned (e.g. a 64 px image has
    a 1×1 UNet bottleneck where GroupNorm normalises two values), so rounding grows past the
    sampler tolerance that the parity README measured on other fixtures. No float32
    implementation can agree with the official numbers more closely than float32 rounding allows,
    so the spread of these runs is the floor of the trajectory tolerance.
    """
    with other_thread_count():
        other_threads = run_steps(fixture_pipeline(ctx), request, numpy_seed)
    exact = run_steps(exact_pipe, request, numpy_seed)
    return [other_threads, exact]


@contextmanager
def other_thread_count() -> Iterator[None]:
    """Run the block on another number of CPU threads (other kernel reductions)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def step_rounding_spread(
    loop: OfficialLoop, exact_pipe: CoDiPipeline, taken: dict[str, list[torch.Tensor]]
) -> dict[str, list[float]]:
    """Per output and step, how far our step from the official state moves under float32
    rounding alone: on another thread count, with float64 networks, and from the starting noise
    rounded the other way (×(1 ± 2⁻²⁴) per coordinate, 3 sign draws). The image, video and
    audio steps move by under 1e-4, the text latent's first step by 6.4e-4, and
    `pipeline_text_to_image`'s first step (a 1×1 UNet bottleneck where GroupNorm normalises two
    values) by up to 1.4e-3."""
    last = loop.steps - 1
    with other_thread_count():
        variants = [loop.denoise_from_official(last)[1]]
    variants.append(replace(loop, pipe=exact_pipe).denoise_from_official(last)[1])
    for seed in range(3):
        rounded = {m: x * (1 + 2.0**-24 * random_signs(x.shape, seed))
                   for m, x in loop.latents.items()}
        variants.append(replace(loop, latents=rounded).denoise_from_official(last)[1])
    spread = {m: [0.0] * loop.steps for m in taken}
    for variant in variants:
        variant_steps = {m: torch.stack(steps) for m, steps in variant.items()}
        for m, errors in step_errors(taken, variant_steps).items():
            spread[m] = [max(a, b) for a, b in zip(spread[m], errors, strict=True)]
    return spread


def stepped_comparisons(
    suffix: str, taken: list[torch.Tensor], official: torch.Tensor, base: float,
    spread: list[float],
) -> list[Comparison]:
    """Each step from the official state against the official next state, at the sampler
    tolerance or, for a step that float32 rounding alone moves further, twice that spread (ours
    and the official are both float32 evaluations, each as far from the exact step)."""
    return [
        Comparison(f"trajectory.{suffix}[{k}] stepped from the official state", ours,
                   official[k], max(base, 2 * spread[k]))
        for k, ours in enumerate(taken)
    ]


def check_pipeline(ctx: FixtureContext) -> list[Comparison]:
    pipe = fixture_pipeline(ctx)
    request = fixture_request(ctx)
    numpy_seed = int(ctx.param("np_random_seed"))
    run = run_steps(pipe, request, numpy_seed)
    exact_pipe = fixture_pipeline(ctx, dtype=torch.float64)
    variants = rounding_runs(ctx, exact_pipe, request, numpy_seed)
    distances = [trajectory_distance(run, other) for other in variants]
    spread = {m: max(d[m] for d in distances) for m in run.final}
    t = ctx.tensors
    n = request.settings.num_samples
    comparisons = [
        Comparison(
            "timesteps",
            torch.stack([torch.full((n,), s.timestep, dtype=torch.long) for s in run.steps]),
            t["timesteps"], EXACT,
        )
    ]
    for key in sorted(t):
        if not (match := re.fullmatch(r"conditioning_(?:\d+_)?(\w+)", key)):
            continue
        encoded = next(e for e in run.conditioning.encoded if e.modality == match[1])
        comparisons.append(
            Comparison(key, torch.cat([encoded.uncond, encoded.cond]), t[key], FORWARD_ATOL)
        )
    suffixes = {modality: key.removeprefix("x_T.") for key, modality in indexed(t, "x_T.")}
    official = {m: t[f"trajectory.{suffix}"] for m, suffix in suffixes.items()}
    # Stepping from the official states needs their shapes (a wrong number of samples or steps
    # fails on the free run's shapes already).
    steppable = all(
        official[m].shape == (len(run.steps), *run.latents[m].shape) for m in official
    )
    taken: dict[str, list[torch.Tensor]] = {m: [] for m in official}
    step_spread: dict[str, list[float]] = {m: [] for m in official}
    amplified = {m: 0.0 for m in official}
    if steppable:
        loop = OfficialLoop(pipe, run.latents, run.conditioning.context, request.settings,
                            official)
        _, taken = loop.denoise_from_official(loop.steps - 1)
        step_spread = step_rounding_spread(loop, exact_pipe, taken)
        amplified = amplified_step_errors(loop, step_errors(taken, official))
    for modality, suffix in suffixes.items():
        key = f"x_T.{suffix}"
        base = TEXT_TRAJECTORY_ATOL if modality == "text" else TRAJECTORY_ATOL
        atol = max(base, spread[modality], amplified[modality])
        trajectory = torch.stack([s.latents[modality] for s in run.steps])
        comparisons += [
            Comparison(key, run.latents[modality], t[key], EXACT),
            *stepped_comparisons(suffix, taken[modality], official[modality], base,
                                 step_spread[modality]),
            Comparison(f"trajectory.{suffix}", trajectory, official[modality], atol),
            Comparison(
                f"final_latent.{suffix}", run.final[modality], t[f"final_latent.{suffix}"], atol
            ),
        ]
        if modality == "text":
            comparisons += text_comparisons(ctx, pipe, request, run, suffix)
        else:
            comparisons += decoded_comparisons(ctx, run.result, modality, suffix)
    return comparisons


def text_comparisons(
    ctx: FixtureContext, pipe: CoDiPipeline, request: GenerationRequest, run: PipelineRun,
    suffix: str,
) -> list[Comparison]:
    """The sampled sentences, exactly, twice: from our run, and from the official final latent
    decoded from the generator state our run reached (the seed's draws replayed: crop, flip,
    starting noise, per-step noise). The second isolates decoding and the RNG replay from the
    trajectory: the sentences hardly depend on the latent (docs/parity.md), so a difference in
    the first alone points at the draws before decoding, in both at decoding itself."""
    expected = ctx.extra(f"decoded_text.{suffix.split('_')[0]}")
    generator = torch.Generator()
    generator.set_state(run.decode_rng_state)
    official_latent = {"text": ctx.tensors[f"final_latent.{suffix}"]}
    from_official = pipe.decode(official_latent, request.settings, generator).texts
    return texts_compared("decoded_text", run.result.texts, expected) + texts_compared(
        "decoded_text from the official latent", from_official, expected
    )


def decoded_comparisons(ctx, result, modality: str, suffix: str) -> list[Comparison]:
    """The decoded media against the official decoded media (uint8 ±1, waveform)."""
    t = ctx.tensors
    pixels, waveform = f"decoded_uint8.{suffix}", f"decoded_waveform.{suffix}"
    if modality == "image" and pixels in t:
        ours = torch.from_numpy(np.stack([np.asarray(im) for im in result.images]))
        return [Comparison(pixels, ours, t[pixels], PIXEL_ATOL)]
    if modality == "video" and pixels in t:
        ours = torch.from_numpy(np.stack(result.videos))
        return [Comparison(pixels, ours, t[pixels], PIXEL_ATOL)]
    if modality == "audio" and waveform in t:
        ours = torch.from_numpy(np.stack(result.audios))[:, None]
        return [Comparison(waveform, ours, t[waveform], FORWARD_ATOL)]
    return []


CHECKS = {
    name: check_pipeline
    for name in (
        "pipeline_text_to_image",
        "pipeline_multicond_to_image",
        "pipeline_image_to_text",
        "pipeline_text_to_video_audio",
    )
}
