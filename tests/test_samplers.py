"""Samplers over several latents: every sampler and output mix, DDIM unchanged, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codi.errors import CoDiUserError
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.request import (
    SAMPLER_NAMES,
    ConditionInput,
    GenerationRequest,
    GenerationSettings,
)
from codi.pipeline.sampling import SAMPLERS, make_sampler, sample_ddim, sample_latents
from codi.store.assets import TINY_RANDOM_DIR

MIXES = [["image"], ["audio"], ["text"], ["video"], ["video", "audio"],
         ["image", "audio", "text", "video"]]


@pytest.fixture(scope="module")
def pipe() -> CoDiPipeline:
    return CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)


def request(outputs, sampler="ddim", **overrides) -> GenerationRequest:
    values = {"steps": 3, "image_size": 64, "num_frames": 2, "seed": 5, "sampler": sampler}
    return GenerationRequest([ConditionInput("text", "a bell")], list(outputs),
                             GenerationSettings(**(values | overrides)))


def test_the_request_and_the_sampler_table_name_the_same_samplers():
    assert tuple(SAMPLERS) == SAMPLER_NAMES


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
@pytest.mark.parametrize("outputs", MIXES, ids="+".join)
def test_every_sampler_serves_every_output_mix(pipe, sampler, outputs):
    result = pipe(request(outputs, sampler))
    assert result.metadata["settings"]["sampler"] == sampler
    if "image" in outputs:
        assert np.asarray(result.images[0]).std() > 0
    if "video" in outputs:
        assert result.videos[0].shape[0] == 2 and result.videos[0].std() > 0
    if "audio" in outputs:
        assert np.isfinite(result.audios[0]).all() and np.abs(result.audios[0]).max() > 0
    if "text" in outputs:
        assert result.texts[0].strip()


def _fake_denoise(model_in, timesteps, context):
    """A deterministic stand-in UNet per latent: eps depends on that latent alone."""
    return {k: 0.1 * x + 0.01 * timesteps.float().view(-1, *[1] * (x.dim() - 1))
            for k, x in model_in.items()}


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_the_joint_loop_equals_one_latent_at_a_time_when_outputs_do_not_interact(sampler):
    gen = torch.Generator().manual_seed(0)
    latents = {"image": torch.randn(1, 4, 8, 8, generator=gen),
               "audio": torch.randn(1, 8, 16, 4, generator=gen)}
    context = torch.zeros(2, 1, 8)

    def run(subset, seed=3):
        return sample_latents(_fake_denoise, {k: latents[k] for k in subset}, context,
                              lambda: make_sampler(sampler), 6, 7.5,
                              generator=torch.Generator().manual_seed(seed))

    joint = run(["image", "audio"])
    if sampler == "euler_ancestral":  # its noise comes from one generator, shared in order
        assert torch.equal(run(["image", "audio"])["image"], joint["image"])
        return
    for name in latents:
        assert torch.allclose(joint[name], run([name])[name], atol=1e-6)


def test_ddim_through_the_general_loop_is_the_ddim_loop():
    gen = torch.Generator().manual_seed(1)
    latents = {"image": torch.randn(2, 4, 8, 8, generator=gen)}
    context = torch.zeros(4, 1, 8)
    scheduler = make_sampler("ddim")
    assert torch.equal(
        sample_ddim(_fake_denoise, latents, context, scheduler, 5, 3.0)["image"],
        sample_latents(_fake_denoise, latents, context, lambda: make_sampler("ddim"), 5,
                       3.0)["image"])


def test_an_ancestral_sampler_reproduces_for_a_seed_and_differs_across_seeds(pipe):
    first = pipe(request(["image"], "euler_ancestral"))
    again = pipe(request(["image"], "euler_ancestral"))
    other = pipe(request(["image"], "euler_ancestral", seed=6))
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))
    assert not np.array_equal(np.asarray(first.images[0]), np.asarray(other.images[0]))


def test_samplers_give_different_results_from_ddim(pipe):
    ddim = np.asarray(pipe(request(["image"])).images[0], dtype=np.int16)
    dpm = np.asarray(pipe(request(["image"], "dpmpp_2m")).images[0], dtype=np.int16)
    assert np.abs(ddim - dpm).max() > 0


def test_an_unknown_sampler_is_a_user_error_listing_the_choices():
    with pytest.raises(CoDiUserError, match="dpmpp_2m.*euler_ancestral"):
        request(["image"], "plms").validate()
