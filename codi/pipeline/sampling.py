"""CoDi's samplers over several latents at once, with classifier-free guidance.

DDIM (eta 0) is CoDi's own and the default; DPM-Solver++ 2M (plain or with Karras sigmas), UniPC,
Euler and Euler ancestral are diffusers' schedulers configured from the same schedule. Each latent
is stepped by its own scheduler instance (multistep solvers keep a history per latent).

diffusers' `DDIMScheduler` reproduces the official sampler exactly when configured as CoDi's
(1000 scaled-linear steps from 0.00085 to 0.012, "leading" spacing with offset 1 → timesteps
1, 21, …, 981 for 50 steps, and the last step stepping to ᾱ[0], not 1). One deliberate difference:
for step counts that do not divide 1000 we take exactly the steps asked for, where the official
code takes one more (7 → 8) or crashes (3).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from codi.errors import CoDiUserError
from codi.models.official_config import OfficialConfig
from codi.pipeline.variations import StartLatent, noised_start

#: The samplers a request may name → (diffusers class, options on top of CoDi's schedule).
SAMPLERS: dict[str, tuple[type, dict[str, Any]]] = {
    "ddim": (DDIMScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {
        "algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_ancestral": (EulerAncestralDiscreteScheduler, {}),
}

#: eps for every latent, given the (possibly CFG-doubled) latents, the timestep batch and context.
DenoiseFn = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def make_scheduler(official: OfficialConfig | None = None) -> DDIMScheduler:
    """A `DDIMScheduler` that computes what the official DDIM sampler computes."""
    codi = (official or OfficialConfig.full()).codi
    start, end, steps = codi["beta_linear_start"], codi["beta_linear_end"], codi["timesteps"]
    scheduler = DDIMScheduler(
        num_train_timesteps=steps,
        beta_start=start,
        beta_end=end,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )
    # The official buffers are computed in float64 and stored as float32; diffusers computes in
    # float32 directly, which differs in the last bits.
    betas = np.linspace(start**0.5, end**0.5, steps, dtype=np.float64) ** 2
    alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas)).float()
    scheduler.alphas_cumprod = alphas_cumprod
    scheduler.final_alpha_cumprod = alphas_cumprod[0]
    return scheduler


def make_sampler(name: str, official: OfficialConfig | None = None):
    """A fresh scheduler for sampler `name`, on CoDi's schedule (DDIM: exactly the official)."""
    if name not in SAMPLERS:  # requests are checked against SAMPLER_NAMES before this
        raise CoDiUserError(f"Sampler {name!r}: choose one of {', '.join(SAMPLERS)}.")
    ddim = make_scheduler(official)
    if name == "ddim":
        return ddim
    cls, options = SAMPLERS[name]
    config = {k: v for k, v in ddim.config.items()
              if k in inspect.signature(cls.__init__).parameters}
    return cls.from_config({**config, **options})


def apply_guidance(eps: torch.Tensor, scale: float) -> torch.Tensor:
    """ε_u + s·(ε_c − ε_u) for a batch laid out [unconditional; conditional]."""
    uncond, cond = eps.chunk(2)
    return uncond + scale * (cond - uncond)


@dataclass
class StepResult:
    """What one denoising step produced, per latent name."""

    index: int
    timestep: int
    latents: dict[str, torch.Tensor]
    pred_original: dict[str, torch.Tensor]


def sample_ddim(
    denoise: DenoiseFn,
    latents: dict[str, torch.Tensor],
    context: torch.Tensor,
    scheduler: DDIMScheduler,
    steps: int,
    guidance_scale: float,
    on_step: Callable[[StepResult], None] | None = None,
) -> dict[str, torch.Tensor]:
    """DDIM over every latent with one (stateless) scheduler: `sample_latents` for DDIM."""
    return sample_latents(denoise, latents, context, lambda: scheduler, steps, guidance_scale,
                          on_step=on_step)


def _step_options(scheduler: Any, generator: torch.Generator | None) -> dict[str, Any]:
    """What this scheduler's `step` takes beyond (eps, t, x): DDIM's eta, a noise generator."""
    accepted = inspect.signature(scheduler.step).parameters
    options: dict[str, Any] = {}
    if "eta" in accepted:
        options["eta"] = 0.0
    if "generator" in accepted and generator is not None:
        options["generator"] = generator
    return options


def sample_latents(
    denoise: DenoiseFn,
    latents: dict[str, torch.Tensor],
    context: torch.Tensor,
    new_scheduler: Callable[[], Any],
    steps: int,
    guidance_scale: float,
    generator: torch.Generator | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    starts: dict[str, StartLatent] | None = None,
) -> dict[str, torch.Tensor]:
    """Denoise every latent together from its starting noise, each with its own scheduler.

    context is [unconditional; conditional] (2n rows) when guidance_scale != 1, else the n
    conditional rows only: a scale of 1 needs no unconditional pass. `generator` feeds the
    ancestral samplers' noise, so a seed reproduces them. A latent in `starts` (a variation)
    waits until its step, is then noised there from its clean start with its own noise, and
    is denoised with the others from that step on; one whose step is `steps` stays its start.
    """
    guided = guidance_scale != 1.0
    starts = starts or {}
    schedulers = {name: new_scheduler() for name in latents}
    for scheduler in schedulers.values():
        scheduler.set_timesteps(steps)
    first = next(iter(schedulers.values()))
    noise = {k: latents[k] for k in starts}
    latents = {k: starts[k].latent if k in starts else x * first.init_noise_sigma
               for k, x in latents.items()}
    options = _step_options(first, generator)
    for index, t in enumerate(first.timesteps):
        latents = dict(latents)  # each step's StepResult keeps its own latents
        for name in [k for k, start in starts.items() if start.index == index]:
            latents[name] = noised_start(schedulers[name], starts[name].latent, noise[name],
                                         index, t)
        active = [k for k in latents if k not in starts or starts[k].index <= index]
        pred_original: dict[str, torch.Tensor | None] = {}
        if active:
            scaled = {k: schedulers[k].scale_model_input(latents[k], t) for k in active}
            model_in = {k: torch.cat([x, x]) if guided else x for k, x in scaled.items()}
            batch = next(iter(model_in.values())).shape[0]
            eps = denoise(model_in, t.repeat(batch), context)
            for name in active:
                e = apply_guidance(eps[name], guidance_scale) if guided else eps[name]
                out = schedulers[name].step(e, t, latents[name], **options)
                latents[name] = out.prev_sample
                pred_original[name] = getattr(out, "pred_original_sample", None)
        if on_step is not None:
            on_step(StepResult(index, int(t), latents, pred_original))
    return latents
