"""Variations (SDEdit): an output starts from given media with a strength from 0 to 1.

Strength 0 returns the media's VAE round trip, strength 1 is ordinary generation from the same
seed (bit-identical, every sampler), strengths in between stay closer to the media the lower they
are; a start joins the joint loop at its step while the other outputs run every step.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from codi.cli import parse_starts
from codi.engine.memory_plan import plan_request
from codi.errors import CoDiUserError
from codi.nano import world
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.components import needed_components
from codi.pipeline.request import (
    SAMPLER_NAMES,
    ConditionInput,
    GenerationRequest,
    GenerationSettings,
    StartInput,
)
from codi.pipeline.variations import StartLatent, fit_frames, fit_time, start_index
from codi.store.assets import NANO_DIR, TINY_RANDOM_DIR

needs_nano = pytest.mark.skipif(not (NANO_DIR / "model_index.json").is_file(),
                                reason="CoDi-Nano is not in assets/")


@pytest.fixture(scope="module")
def nano() -> CoDiPipeline:
    return CoDiPipeline.from_pretrained(NANO_DIR)


@pytest.fixture(scope="module")
def tiny() -> CoDiPipeline:
    return CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    """A CoDi-Nano world scene as an image, a video (frames) and a sound."""
    folder = tmp_path_factory.mktemp("scene")
    scene = world.sample_scene(np.random.default_rng(0), 1)
    image = world.render_image(scene)
    Image.fromarray(image).save(folder / "scene.png")
    soundfile.write(folder / "scene.wav", world.render_audio(scene), 16000)
    return {"image": image, "image_path": folder / "scene.png",
            "video": world.render_video(scene), "audio_path": folder / "scene.wav"}


def nano_request(outputs, starts, sampler="ddim", steps=10, **overrides) -> GenerationRequest:
    settings = GenerationSettings(steps=steps, image_size=64, num_frames=4, seed=3,
                                  sampler=sampler, **overrides)
    return GenerationRequest([ConditionInput("text", "a green circle on the left")],
                             list(outputs), settings, starts=starts)


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0]).astype(float)


def test_the_strength_picks_the_step_a_start_joins_at():
    assert [start_index(10, s) for s in (0, 0.25, 0.5, 1)] == [10, 8, 5, 0]


@needs_nano
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_strength_zero_returns_the_image_and_lower_strength_stays_closer(
    nano, scene_files, sampler
):
    def distance(strength):
        start = StartInput("image", scene_files["image_path"], strength)
        result = nano(nano_request(["image"], [start], sampler))
        return np.abs(pixels(result) - scene_files["image"]).mean()

    kept, half, plain = distance(0.0), distance(0.5), distance(1.0)
    # measured on CoDi-Nano with DDIM: 0.88 (its VAE's round trip), 7.8, 19.0 grey levels
    assert kept < 2.0
    assert kept < half < plain


@needs_nano
@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_strength_one_is_ordinary_generation_from_the_same_seed(nano, scene_files, sampler):
    start = StartInput("image", scene_files["image_path"], 1.0)
    varied = nano(nano_request(["image", "audio"], [start], sampler, steps=4))
    plain = nano(nano_request(["image", "audio"], [], sampler, steps=4))
    assert np.array_equal(pixels(varied), pixels(plain))
    assert np.array_equal(varied.audios[0], plain.audios[0])
    assert varied.metadata["starts"] == [{"modality": "image", "source": str(
        scene_files["image_path"]), "strength": 1.0, "joins_at_step": 0}]


@needs_nano
@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m", "euler_ancestral"])
def test_strength_zero_leaves_video_and_audio_latents_as_encoded(nano, scene_files, sampler):
    starts = [StartInput("video", scene_files["video"], 0.0),
              StartInput("audio", scene_files["audio_path"], 0.0)]
    request = nano_request(["video", "audio"], starts, sampler, steps=3)
    encoded = {s.modality: nano.start_encoder().encode(s, request.settings) for s in starts}
    noise = nano.prepare_latents(request.outputs, request.settings,
                                 torch.Generator().manual_seed(3))
    finals = nano.denoise(noise, _context(nano, request), request.settings,
                          nano.random_sources(3, False),
                          starts={m: StartLatent(e, 3) for m, e in encoded.items()})
    for modality, latent in encoded.items():
        assert torch.equal(finals[modality], latent)
    assert encoded["video"].shape[2] == 4  # frames
    assert encoded["audio"].shape[2] == nano.audio_latent_frames


def _context(pipe, request):
    from codi.pipeline.inputs import decode_inputs

    inputs = decode_inputs(request.inputs, pipe.limits)
    return pipe.encode_conditions(inputs, request.settings, pipe.random_sources(3, False)).context


def test_a_start_joins_at_its_step_while_the_other_output_runs_every_step(tiny, tmp_path):
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    request = GenerationRequest(
        [ConditionInput("text", "a bell")], ["image", "audio"],
        GenerationSettings(steps=4, image_size=64, seed=1),
        starts=[StartInput("image", tmp_path / "grey.png", 0.5)])
    seen: list[set[str]] = []
    original = tiny.denoise

    def recording_denoise(*args, **kwargs):
        kwargs["on_result"] = lambda step: seen.append(
            {k for k, v in step.pred_original.items() if v is not None})
        return original(*args, **kwargs)

    tiny.denoise = recording_denoise
    try:
        result = tiny(request)
    finally:
        del tiny.denoise
    assert seen == [{"audio"}, {"audio"}, {"image", "audio"}, {"image", "audio"}]
    assert result.metadata["starts"][0]["joins_at_step"] == 2


def test_video_and_audio_variations_run_end_to_end(tiny, scene_files):
    frames = np.stack([np.asarray(Image.fromarray(f).resize((64, 64))) for f in
                       scene_files["video"]])
    request = GenerationRequest(
        [ConditionInput("text", "a bell")], ["video", "audio"],
        GenerationSettings(steps=4, image_size=64, num_frames=2, seed=1, sampler="dpmpp_2m"),
        starts=[StartInput("video", frames, 0.5), StartInput("audio", scene_files["audio_path"],
                                                            0.75)])
    result = tiny(request)
    assert result.videos[0].shape[0] == 2 and np.isfinite(result.audios[0]).all()
    assert [s["joins_at_step"] for s in result.metadata["starts"]] == [2, 1]


def test_a_variation_needs_its_vae_before_denoising_and_the_plan_counts_it_once():
    needed = needed_components(["text"], ["image", "audio"], set(), starts=["audio"])
    assert ("vae_audio", "encode", None) in needed and ("vae_audio", "decode", None) in needed
    plain = plan_request(["text"], ["image", "audio"], "fp16", TINY_RANDOM_DIR)
    varied = plan_request(["text"], ["image", "audio"], "fp16", TINY_RANDOM_DIR, starts=["audio"])
    assert varied.total_bytes == plain.total_bytes
    assert varied.stage_bytes("encode") > plain.stage_bytes("encode")


@pytest.mark.parametrize("starts, outputs, message", [
    ([StartInput("text", "a", 0.5)], ["text"], "text output cannot start"),
    ([StartInput("image", "a.png", 0.5)], ["audio"], "image is not an output"),
    ([StartInput("image", "a.png", 1.5)], ["image"], "from 0 .keep it. to 1"),
    ([StartInput("image", "a.png", 0.2), StartInput("image", "b.png", 0.2)], ["image"],
     "one file only"),
    ([StartInput("image", None, 0.2)], ["image"], "has no file"),
])
def test_bad_starts_are_refused_with_a_clear_message(starts, outputs, message):
    request = GenerationRequest([ConditionInput("text", "x")], outputs, starts=starts)
    with pytest.raises(CoDiUserError, match=message):
        request.validate()


def test_a_start_file_that_is_not_media_is_a_user_error(tiny, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    request = GenerationRequest([ConditionInput("text", "x")], ["image"],
                                GenerationSettings(steps=2, image_size=64, seed=1),
                                starts=[StartInput("image", tmp_path / "broken.png", 0.5)])
    with pytest.raises(CoDiUserError):
        tiny(request)


def test_cli_start_flags():
    assert parse_starts(["image=a.png"], 0.3)[0].strength == 0.3
    with pytest.raises(CoDiUserError, match="KIND=FILE"):
        parse_starts(["a.png"], 0.3)


def test_frame_and_time_fitting():
    frames = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    fitted = fit_frames(frames, 4)
    assert fitted.shape[0] == 4 and np.array_equal(fitted[3], frames[1])
    latent = torch.ones(1, 8, 5, 16)
    assert fit_time(latent, 3).shape[2] == 3
    padded = fit_time(latent, 7)
    assert padded.shape[2] == 7 and padded[:, :, 5:].abs().sum() == 0
