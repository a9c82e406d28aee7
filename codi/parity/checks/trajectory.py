"""A guided trajectory compared step by step: each step taken from the official state, and how
far the trajectory itself amplifies an error of that size.

A free run's distance from the official trajectory mixes two things: the error of each step
(what the implementation gets right or wrong) and the trajectory's conditioning (how much later
steps amplify an earlier difference; with guidance 7.5 on random weights, a ±6.7e-4 change of
every coordinate of the first state of `pipeline_image_to_text` moves the last by 8e-2 to 2.3e-1,
depending on the signs). Stepping from the
official states separates them: the step errors are compared at the sampler tolerance, and the
free run at what the measured amplification makes of those step errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.conditioning import RandomSources
from codi.pipeline.request import GenerationSettings
from codi.pipeline.sampling import StepResult, make_sampler


class SteppedFromOfficial:
    """A scheduler that takes its own step, keeps it in `taken`, then continues from the official
    state instead, up to step `until` (there from the official state plus `perturbation`); after
    `until` it continues from its own steps."""

    def __init__(
        self, inner: Any, official: torch.Tensor, until: int,
        perturbation: torch.Tensor | None = None,
    ) -> None:
        self.inner, self.official, self.until = inner, official, until
        self.perturbation = perturbation
        self.taken: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step(self, eps: torch.Tensor, t: Any, x: torch.Tensor, **options: Any) -> Any:
        out = self.inner.step(eps, t, x, **options)
        index = len(self.taken)
        self.taken.append(out.prev_sample)
        if index <= self.until:
            state = self.official[index].to(out.prev_sample)
            if index == self.until and self.perturbation is not None:
                state = state + self.perturbation.to(state)
            out.prev_sample = state
        return out


@dataclass(frozen=True)
class OfficialLoop:
    """One pipeline loop and the official states it is compared with: `official[m][k]` is
    output m's official state after step k."""

    pipe: CoDiPipeline
    latents: Mapping[str, torch.Tensor]
    context: torch.Tensor
    settings: GenerationSettings
    official: Mapping[str, torch.Tensor]

    @property
    def steps(self) -> int:
        return len(next(iter(self.official.values())))

    def denoise_from_official(
        self, until: int, perturbations: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[list[StepResult], dict[str, list[torch.Tensor]]]:
        """The loop, each output continuing from its official state up to step `until` (there
        moved by `perturbations[m]`), and freely after it.

        Returns the steps' results and, per output, the step it took itself at every step."""
        perturbations = perturbations or {}
        schedulers = {
            m: SteppedFromOfficial(make_sampler(self.settings.sampler), self.official[m], until,
                                   perturbations.get(m))
            for m in self.latents
        }
        in_order = iter(schedulers.values())
        settings = self.settings
        rng = RandomSources(torch.Generator().manual_seed(settings.seed),
                            np.random.RandomState(0), settings.official_randomness)
        steps: list[StepResult] = []
        self.pipe.denoise(dict(self.latents), self.context, settings, rng,
                          on_result=steps.append, new_scheduler=lambda: next(in_order))
        return steps, {m: s.taken for m, s in schedulers.items()}


def step_errors(taken: Mapping[str, list[torch.Tensor]],
                official: Mapping[str, torch.Tensor]) -> dict[str, list[float]]:
    """Per output and step, the largest difference between our step from the official state
    and the official next state."""
    return {
        m: [float((ours.double().cpu() - official[m][k].double()).abs().max())
            for k, ours in enumerate(taken[m])]
        for m in taken
    }


def random_signs(shape: torch.Size, seed: int) -> torch.Tensor:
    """±1 in every coordinate, from a fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, tuple(shape), generator=generator).float() * 2 - 1


def amplified_step_errors(
    loop: OfficialLoop, errors: Mapping[str, list[float]]
) -> dict[str, float]:
    """Per output, how far a free run can drift from the official trajectory when every step
    errs by as much as it measurably does: the largest, over steps j, of the step error at j
    plus, for every earlier step k, how far the later state j moves when state k is moved by
    ±(step error at k) in every coordinate (random signs, fixed seed; our own step map).

    The outputs are moved together (the joint UNets couple them). The sign vector is a corner of
    the box of that size: an estimate for a step error of that largest coordinate in a typical
    direction, not a bound for the worst one."""
    official = loop.official
    bound = {m: list(errors[m]) for m in official}
    for k in range(loop.steps - 1):
        moves = {
            m: errors[m][k] * random_signs(official[m][k].shape, seed=k)
            for m in official if errors[m][k] > 0
        }
        if not moves:
            continue
        unmoved, _ = loop.denoise_from_official(k)
        moved, _ = loop.denoise_from_official(k, moves)
        for j in range(k + 1, loop.steps):
            for m in official:
                bound[m][j] += float(
                    (moved[j].latents[m] - unmoved[j].latents[m]).abs().max()
                )
    return {m: max(per_step) for m, per_step in bound.items()}
