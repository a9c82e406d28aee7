"""`CoDiPipeline`: any mix of inputs → any set of outputs in one joint denoising loop.

`__call__` reads like the algorithm: check the request → decode the inputs → encode each input to
one token → mix the tokens → draw the starting noise → denoise all outputs together → decode.
Components are opened from the converted folder only when a request needs them, and a
`ResidencyManager` (codi/engine/residency.py) keeps on the device only what the current stage
(encoders → UNets → decoders) and the memory budget allow. Running out of memory retries once
with more offloading, then fails with a `CoDiUserError` that says what to change.
"""

from __future__ import annotations

import gc
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codi import __version__
from codi.engine.residency import IMAGE_ONLY, ResidencyManager
from codi.engine.runtime import RuntimeOptions, component_dtype
from codi.errors import CoDiUserError, GenerationCancelled
from codi.media.limits import MediaLimits
from codi.models.joint import UNET_OF_MODALITY, joint_forward, mix_conditions
from codi.models.mel import HOP_LENGTH, SAMPLE_RATE
from codi.pipeline.components import needed_components
from codi.pipeline.conditioning import ConditionEncoder, EncodedCondition, RandomSources
from codi.pipeline.decoding import LatentDecoder
from codi.pipeline.inputs import DecodedInput, decode_inputs
from codi.pipeline.request import GenerationRequest, GenerationSettings
from codi.pipeline.result import GenerationResult
from codi.pipeline.previews import (
    PREVIEW_EVERY,
    PREVIEW_KEY,
    PREVIEW_MODALITIES,
    LatentToRGB,
    Preview,
    PreviewMaker,
    fit_latent_to_rgb,
)
from codi.pipeline.sampling import make_sampler, sample_latents
from codi.pipeline.variations import StartEncoder, StartLatent, encode_starts, start_summaries

#: The official audio latent: 1024 mel frames (10.24 s) × 64 bins, /4 each (a model folder's
#: `geometry.audio_latent_frames` may set another length, e.g. CoDi-Nano's 2.56 s).
AUDIO_LATENT_FRAMES, AUDIO_LATENT_BINS = 256, 16
#: Seconds of sound per audio latent frame: the VAE's 4 mel frames of HOP_LENGTH samples.
AUDIO_LATENT_SECONDS = 4 * HOP_LENGTH / SAMPLE_RATE
#: The SD VAE downsamples by 8.
VAE_FACTOR = 8
#: What running out of memory raises on each device (torch.cuda.OutOfMemoryError on CUDA).
OUT_OF_MEMORY = (torch.OutOfMemoryError, MemoryError)


def release_memory() -> None:
    """Free what a failed attempt left: unreachable tensors, then CUDA's cached blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class Conditioning:
    """The inputs' tokens and the mixed context the UNets attend to ([uncond; cond] or cond)."""

    encoded: list[EncodedCondition]
    context: torch.Tensor


class CoDiPipeline:
    """The CoDi any-to-any pipeline over a converted model folder."""

    def __init__(
        self,
        load_component: Callable[[str], torch.nn.Module],
        available: set[str],
        tokenizers: dict[str, Any],
        codi_constants: dict[str, Any],
        model_info: dict[str, Any],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        limits: MediaLimits | None = None,
        runtime: RuntimeOptions | None = None,
        load_variant: Callable[[str, str], torch.nn.Module] | None = None,
        defaults: dict[str, Any] | None = None,
        geometry: dict[str, Any] | None = None,
    ) -> None:
        self._load = load_component
        self.available = set(available)
        self.tokenizers = tokenizers
        self.scale_factors = {k: float(v) for k, v in codi_constants["scale_factors"].items()}
        self.model_info = model_info
        #: Settings this model runs with (CoDi-Nano: 64 px, ...), over the official ones.
        self.defaults = dict(defaults or {})
        self.audio_latent_frames = int((geometry or {}).get("audio_latent_frames",
                                                            AUDIO_LATENT_FRAMES))
        self.device = torch.device(device)
        self.dtype = dtype
        self.limits = limits or MediaLimits()
        self.runtime = runtime or RuntimeOptions(device=self.device.type)
        self.residency = ResidencyManager(load_component, self.device, self.runtime, load_variant)
        self._lock = threading.Lock()
        self._latent_to_rgb: LatentToRGB | None = None

    @classmethod
    def from_pretrained(
        cls,
        folder: Path | str,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        vocab_dir: Path | None = None,
        runtime: RuntimeOptions | None = None,
    ) -> CoDiPipeline:
        """Open a converted folder (model_index.json + one sub-folder per component).

        Without `runtime`, the pipeline runs in float32 on the CPU (or on `device`/`dtype`). With
        it, `runtime` picks the device and dtype (unless given here) and how components are
        placed; `RuntimeOptions.from_env()` reads the CODI_* environment variables.
        """
        from codi.store.tokenizers import load_tokenizers, tokenizers_from_vocab
        from codi.store.weights import available_components, load_component

        folder = Path(folder)
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            raise CoDiUserError(
                f"{folder} is not a converted CoDi model (no model_index.json). "
                "Convert the official weights with `python -m codi.convert` or "
                "`python -m codi download`."
            )
        index = json.loads(index_path.read_text())
        if runtime is not None:
            device = device or str(runtime.torch_device())
            dtype = dtype or runtime.torch_dtype(torch.device(device))
        device = device or "cpu"
        dtype = dtype or torch.float32
        info = {
            "model_id": index.get("model_id", folder.name),
            "folder": str(folder),
            "kind": index.get("kind", "converted"),
            "note": index.get("note", ""),
            "weights_sha256": index.get("weights_sha256", {}),
            PREVIEW_KEY: index.get(PREVIEW_KEY),
        }
        return cls(
            load_component=lambda name: load_component(
                folder, name, component_dtype(name, dtype, torch.device(device))),
            available=set(available_components(folder)),
            tokenizers=tokenizers_from_vocab(vocab_dir) if vocab_dir else load_tokenizers(folder),
            codi_constants=index["codi"],
            model_info=info,
            device=device,
            dtype=dtype,
            runtime=runtime,
            load_variant=lambda name, variant: _load_variant(folder, name, variant, dtype),
            defaults=index.get("defaults"),
            geometry=index.get("geometry"),
        )

    def default_settings(self, **overrides: Any) -> GenerationSettings:
        """GenerationSettings with this model's defaults, then `overrides`."""
        return GenerationSettings(**{**self.defaults, **overrides})

    # -- components ---------------------------------------------------------------------------

    def component(self, name: str, variant: str | None = None) -> torch.nn.Module:
        """A component on the pipeline's device, opened on first use (see codi/engine/residency.py).

        `variant` IMAGE_ONLY accepts "unet_image" without its video layers (image outputs only).
        """
        with self._lock:
            if name not in self.available:
                raise CoDiUserError(
                    f"This model has no '{name}' component, so it cannot serve this request."
                )
            return self.residency.get(name, variant)

    def stage_components(
        self, stage: str, inputs: list[str], outputs: list[str], settings: GenerationSettings,
        starts: Sequence[str] = (),
    ) -> list[str]:
        """The components one stage of a request uses: "encode", "denoise" or "decode"."""
        needed = needed_components(inputs, outputs, self.available,
                                   negative_text=bool(settings.negative_text),
                                   connectors=settings.connectors, starts=starts)
        return [c.name for c in needed if c.stage == stage]

    def connectors(
        self, outputs: list[str], enabled: bool = True
    ) -> dict[str, torch.nn.Module | None] | None:
        """Each output's connectors when the model has them (the released weights do not)."""
        if len(outputs) < 2 or not enabled:
            return None
        names = {m: UNET_OF_MODALITY[m] + "_connectors" for m in outputs}
        return {m: self.component(n) if n in self.available else None for m, n in names.items()}

    # -- the algorithm ------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        request: GenerationRequest,
        on_step: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        on_preview: Callable[[Preview], None] | None = None,
        preview_every: int = PREVIEW_EVERY,
    ) -> GenerationResult:
        """Generate every requested output from every input. See the module docstring.

        `on_preview` gets a cheap picture of each image/video output every `preview_every`
        steps (`codi.pipeline.previews`); the result is the same with or without it.
        On running out of memory, retries once with the next stronger offload mode (kept for later
        requests); if that fails too, raises CoDiUserError saying what to change.
        """
        previews = (None if on_preview is None else
                    lambda steps: PreviewMaker(self.latent_to_rgb(), on_preview, steps,
                                               preview_every))
        try:
            return self._generate(request, on_step, cancel, previews)
        except OUT_OF_MEMORY as error:
            first = error.with_traceback(None)  # its frames hold the failed attempt's tensors
        release_memory()
        before = self.runtime.offload
        stronger = self.residency.escalate()
        if stronger is not None:
            self.runtime = self.residency.options
            try:
                result = self._generate(request, on_step, cancel, previews)
                result.metadata["notices"].append(
                    f"ran out of memory with offload={before}; retried with offload={stronger}"
                )
                return result
            except OUT_OF_MEMORY as error:
                first = error.with_traceback(None)
                self.residency.clear()
            release_memory()
        raise CoDiUserError(
            f"Not enough memory on {self.device} for this request (offload={self.runtime.offload}"
            f", dtype={str(self.dtype).removeprefix('torch.')}). Try fewer samples, a smaller size "
            "or fewer frames, --quantize int8, --offload sequential, or --device cpu."
        ) from first

    def _generate(
        self,
        request: GenerationRequest,
        on_step: Callable[[int, int], None] | None,
        cancel: threading.Event | None,
        previews: Callable[[int], PreviewMaker] | None = None,
    ) -> GenerationResult:
        started = time.perf_counter()
        request.validate()
        settings = request.settings
        seed = settings.seed if settings.seed is not None else secrets.randbits(63)
        rng = self.random_sources(seed, settings.official_randomness)
        inputs = decode_inputs(request.inputs, self.limits)
        modalities = [item.modality for item in inputs]

        def stage(name: str) -> None:
            names = self.stage_components(name, modalities, request.outputs, settings,
                                          [start.modality for start in request.starts])
            self.residency.stage(n for n in names if n in self.available)

        stage("encode")
        conditioning = self.encode_conditions(inputs, settings, rng)
        starts = encode_starts(request.starts, settings, self.start_encoder())
        wants_previews = previews is not None and any(m in PREVIEW_MODALITIES
                                                      for m in request.outputs)
        preview = previews(settings.steps) if wants_previews else None  # may fit, with the VAE
        stage("denoise")
        latents = self.prepare_latents(request.outputs, settings, rng.torch_generator)
        encoded_at = time.perf_counter()
        final = self.denoise(
            latents, conditioning.context, settings, rng, on_step=on_step, cancel=cancel,
            starts=starts, on_result=preview,
        )
        denoised_at = time.perf_counter()
        stage("decode")
        result = self.decode(final, settings, rng.torch_generator)
        result.metadata = self.metadata(request, inputs, seed)
        if request.starts:
            result.metadata["starts"] = start_summaries(request.starts, settings.steps)
        result.metadata["timings_s"] = {
            "encode": round(encoded_at - started, 3),
            "denoise": round(denoised_at - encoded_at, 3),
            "decode": round(time.perf_counter() - denoised_at, 3),
        }
        return result

    def random_sources(self, seed: int, official: bool) -> RandomSources:
        """One torch generator and one NumPy RNG per request, both from the seed."""
        return RandomSources(
            torch.Generator().manual_seed(seed), np.random.RandomState(seed % 2**32), official
        )

    def encode_conditions(
        self, inputs: list[DecodedInput], settings: GenerationSettings, rng: RandomSources
    ) -> Conditioning:
        """One token per input, then the official weighted average ([uncond; cond] with CFG)."""
        encoder = ConditionEncoder(
            self.component, self.tokenizers["clip"], self.device, self.dtype
        )
        n = settings.num_samples
        encoded = [
            encoder.encode(item.modality, item.value, item.weight, n, rng, settings.negative_text)
            for item in inputs
        ]
        weights = [item.weight for item in encoded]
        cond = mix_conditions([item.cond for item in encoded], weights)
        if settings.guidance_scale == 1.0:
            return Conditioning(encoded, cond)
        if settings.negative_text and not any(item.modality == "text" for item in encoded):
            uncond = encoder.text([settings.negative_text]).expand(n, -1, -1)
        else:
            uncond = mix_conditions([item.uncond for item in encoded], weights)
        return Conditioning(encoded, torch.cat([uncond, cond]))

    def latent_shape(self, modality: str, settings: GenerationSettings) -> tuple[int, ...]:
        """The latent of one output (per sample), as the official `inference` shapes it."""
        side = settings.image_size // VAE_FACTOR
        if modality == "image":
            return (4, side, side)
        if modality == "video":
            return (4, settings.num_frames, side, side)
        if modality == "audio":
            channels = self.component("unet_audio").config.in_channels
            return (channels, self.audio_latent_frames, AUDIO_LATENT_BINS)
        return (self.component("unet_text").config.in_channels,)

    def prepare_latents(
        self, outputs: list[str], settings: GenerationSettings, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Starting noise per output, drawn on the CPU in output order (device-independent)."""
        return {
            modality: torch.randn(
                (settings.num_samples, *self.latent_shape(modality, settings)), generator=generator
            )
            for modality in outputs
        }

    def denoise(
        self,
        latents: dict[str, torch.Tensor],
        context: torch.Tensor,
        settings: GenerationSettings,
        rng: RandomSources,
        on_step: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        on_result: Callable | None = None,
        starts: dict[str, StartLatent] | None = None,
        new_scheduler: Callable[[], Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The chosen sampler with guidance over every output at once, on the device; cancellable
        between steps. `starts`: outputs that start from given media (variations).
        `new_scheduler`: called once per output, in the order of `latents`, for its scheduler
        (default: a fresh `settings.sampler`); the parity runner steps from official states."""
        outputs = list(latents)
        image_only = IMAGE_ONLY if "video" not in outputs else None
        unets = {
            m: self.component(n, image_only if n == "unet_image" else None)
            for m, n in ((m, UNET_OF_MODALITY[m]) for m in outputs)
        }
        connectors = self.connectors(outputs, settings.connectors)
        context = context.to(self.device, self.dtype)
        durations = {"video": settings.num_frames / settings.fps,
                     "audio": self.audio_latent_frames * AUDIO_LATENT_SECONDS}

        def denoise_fn(model_in, timesteps, ctx):
            eps = joint_forward(
                unets,
                {m: x.to(self.dtype) for m, x in model_in.items()},
                timesteps.to(self.device),
                ctx,
                connectors=connectors,
                cross_modal=settings.cross_modal,
                durations=durations,
            )
            return {m: e.float() for m, e in eps.items()}

        def after_step(step):
            if rng.official:  # the official sampler draws (and discards) noise every step
                for x in step.latents.values():
                    torch.randn(x.shape, generator=rng.torch_generator)
            if on_result is not None:
                on_result(step)
            if on_step is not None:
                on_step(step.index + 1, settings.steps)
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("Generation cancelled.")

        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Generation cancelled.")
        # The noise was drawn on the CPU (device-independent seeds); it moves to the device once
        # and the whole loop stays there, in float32 between the UNet calls.
        on_device = {m: x.to(self.device, torch.float32) for m, x in latents.items()}
        starts_on_device = {
            m: StartLatent(start.latent.to(self.device, torch.float32), start.index)
            for m, start in (starts or {}).items()
        }
        return sample_latents(
            denoise_fn, on_device, context,
            new_scheduler or (lambda: make_sampler(settings.sampler)),
            settings.steps, settings.guidance_scale, generator=rng.torch_generator,
            on_step=after_step, starts=starts_on_device,
        )

    def latent_to_rgb(self) -> LatentToRGB:
        """The preview colour map of this model's image VAE: the one its folder stores, else
        fitted on first use."""
        if self._latent_to_rgb is None:
            stored = self.model_info.get(PREVIEW_KEY)
            self._latent_to_rgb = (LatentToRGB.from_json(stored) if stored else
                                   fit_latent_to_rgb(self.component("vae_image")))
        return self._latent_to_rgb

    def start_encoder(self) -> StartEncoder:
        """Encodes variation starts with the outputs' VAEs, to this model's audio length."""
        return StartEncoder(self.component, self.limits, self.audio_latent_frames,
                            self.audio_latent_frames * AUDIO_LATENT_SECONDS)

    def decode(
        self,
        latents: dict[str, torch.Tensor],
        settings: GenerationSettings,
        generator: torch.Generator,
    ) -> GenerationResult:
        """Every final latent → its media; text is sampled from `generator`, the request's CPU
        generator, whatever the device, so a seed gives the same text on CPU and GPU."""
        decoder = LatentDecoder(self.component, self.tokenizers["optimus_gpt2"])
        result = GenerationResult()
        if "image" in latents:
            result.images = decoder.images(latents["image"])
        if "video" in latents:
            result.videos = decoder.videos(latents["video"])
        if "audio" in latents:
            result.audios = decoder.audios(latents["audio"])
        if "text" in latents:
            result.texts = decoder.texts(
                latents["text"], self.scale_factors["text"], settings.text_decoding, generator
            )
        return result

    def metadata(
        self, request: GenerationRequest, inputs: list[DecodedInput], seed: int
    ) -> dict[str, Any]:
        """Everything needed to reproduce the result (JSON-serialisable)."""
        settings = request.settings.to_dict()
        settings["seed"] = seed
        return {
            "codi_studio_version": __version__,
            "inputs": [item.summary() for item in inputs],
            "outputs": list(request.outputs),
            "settings": settings,
            "model": self.model_info,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "runtime": self.runtime.summary(self.device, self.dtype),
            "notices": [notice for item in inputs for notice in item.notices],
        }


def _load_variant(folder: Path, name: str, variant: str, dtype: torch.dtype) -> torch.nn.Module:
    """A lighter build of a component: IMAGE_ONLY is "unet_image" without its video layers (their
    stored weights are left unread)."""
    from diffusers.utils import logging as diffusers_logging

    from codi.store.weights import load_component

    if (name, variant) != ("unet_image", IMAGE_ONLY):
        return load_component(folder, name, dtype)
    from codi.models.unet_2d import CoDiUNet2DModel

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # it would list every temporal key as unused
    try:
        return CoDiUNet2DModel.from_pretrained(
            Path(folder) / name, torch_dtype=dtype, use_video_architecture=False
        ).eval()
    finally:
        diffusers_logging.set_verbosity(verbosity)
