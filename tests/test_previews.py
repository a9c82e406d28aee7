"""Live previews: a fitted latent→RGB map shows each image/video output every few steps,
leaves the result unchanged, and reaches only the browser sessions that asked for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from codi.nano import world
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.previews import Preview, PreviewMaker, fit_latent_to_rgb
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.pipeline.sampling import StepResult
from codi.pipeline.variations import square_pixels
from codi.store.assets import NANO_DIR, TINY_RANDOM_DIR
from ui.previews import PreviewBoard


@pytest.fixture(scope="module")
def tiny() -> CoDiPipeline:
    return CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)


def _request(outputs: list[str], steps: int = 10) -> GenerationRequest:
    return GenerationRequest([ConditionInput("text", "a red ball", 1.0)], outputs,
                             GenerationSettings(steps=steps, seed=7, image_size=64,
                                                num_frames=6))


def test_previews_come_every_few_steps_and_leave_the_result_unchanged(tiny):
    plain = tiny(_request(["image", "video"]))
    previews: list[Preview] = []
    watched = tiny(_request(["image", "video"]), on_preview=previews.append, preview_every=3)
    assert [p.step for p in previews] == [3, 6, 9]  # none at the last step
    assert all(p.steps == 10 for p in previews)
    np.testing.assert_array_equal(np.asarray(plain.images[0]), np.asarray(watched.images[0]))
    np.testing.assert_array_equal(plain.videos[0], watched.videos[0])
    image, = previews[0].images["image"]
    strip, = previews[0].images["video"]
    assert image.width == image.height >= 64
    assert strip.width == 4 * strip.height  # four frames of the six, side by side
    assert len({np.asarray(p.images["image"][0]).tobytes() for p in previews}) == 3


def test_outputs_without_pictures_make_no_previews(tiny):
    previews: list[Preview] = []
    tiny(_request(["text"]), on_preview=previews.append, preview_every=1)
    assert previews == []


def test_the_predicted_clean_latent_is_the_source_when_the_sampler_gives_one():
    seen = []

    class Recorder:
        def __call__(self, latent):
            seen.append(latent.mean().item())
            return np.zeros((*latent.shape[-2:], 3), np.uint8)

    maker = PreviewMaker(Recorder(), lambda preview: None, steps=10, every=1)
    noisy, clean = torch.full((1, 4, 2, 2), 5.0), torch.full((1, 4, 2, 2), 1.0)
    maker(StepResult(0, 900, {"image": noisy}, {"image": clean}))
    maker(StepResult(1, 800, {"image": noisy}, {"image": None}))
    maker(StepResult(9, 0, {"image": noisy}, {"image": clean}))  # the last step: no preview
    assert seen == [1.0, 5.0]


@pytest.mark.skipif(not (NANO_DIR / "model_index.json").is_file(),
                    reason="CoDi-Nano is not in assets/")
def test_the_fitted_map_reproduces_the_decoders_colours_on_codi_nano():
    vae = CoDiPipeline.from_pretrained(NANO_DIR).component("vae_image")
    to_rgb = fit_latent_to_rgb(vae)
    pictures = [world.render_image(world.sample_scene(np.random.default_rng(s), 2))
                for s in range(4)]  # scenes the map was not fitted on
    pixels = torch.stack([square_pixels(Image.fromarray(p), 64) for p in pictures])
    with torch.no_grad():
        mean = vae.encode(pixels.to(vae.dtype)).latent_dist.mean.float()
        latents = vae.config.scaling_factor * mean
        decoded = vae.decode(mean.to(vae.dtype)).sample.float().clamp(-1, 1)
    target = torch.nn.functional.adaptive_avg_pool2d(decoded, latents.shape[-2:])
    target = ((target + 1) / 2 * 255).permute(0, 2, 3, 1).numpy()
    preview = np.stack([to_rgb(z) for z in latents]).astype(float)
    # Nano's small VAE is far from linear in colour (a linear map fitted on these very scenes
    # reaches a correlation of 0.69): the preview is a sketch, measured 0.46 here.
    assert np.corrcoef(preview.ravel(), target.ravel())[0, 1] > 0.35
    flat = np.abs(target.mean(axis=(0, 1, 2)) - target).mean()
    assert np.abs(preview - target).mean() < 0.8 * flat  # clearly better than a flat colour


def _preview(step: int) -> Preview:
    return Preview(step, 20, {"image": [Image.new("RGB", (8, 8), (step, 0, 0))],
                              "video": [Image.new("RGB", (32, 8))]})


def test_the_board_serves_only_sessions_that_watch_and_keeps_the_newest_files(tmp_path):
    board = PreviewBoard(tmp_path)
    assert board.sink("api") is None  # an API client never asked: its runs make none
    board.watch("page", True)
    post = board.sink("page")
    for step in (5, 10, 15):
        post(_preview(step))
    posted = board.take("page")
    assert posted.caption == "Live preview · step 15/20"
    assert [Image.open(p).getpixel((0, 0))[0] for p in posted.paths[:1]] == [15]
    assert board.take("page") is None  # handed out once
    files = sorted(p.name.split("-")[0] for p in (tmp_path / "page").iterdir())
    assert set(files) == {"00002", "00003"}  # the set before stays while the page loads it
    board.watch("page", False)  # switched off mid-run
    post(_preview(20))
    assert board.take("page") is None
    board.clear("page")
    assert not (tmp_path / "page").exists()
