"""CoDiPipeline end to end on the embedded tiny model: every modality, mixing, seeds, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from codi.errors import CoDiUserError, GenerationCancelled
from codi.media.writers import read_png_metadata
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.store.tiny_random import TINY_RANDOM_DIR


@pytest.fixture(scope="module")
def pipe() -> CoDiPipeline:
    return CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)


def fast(**overrides) -> GenerationSettings:
    values = {"steps": 2, "image_size": 64, "num_frames": 3, "seed": 11} | overrides
    return GenerationSettings(**values)


def sine(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def picture(color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> Image.Image:
    return Image.new("RGB", size, color)


def run(pipe, inputs, outputs, **settings):
    return pipe(GenerationRequest(inputs, outputs, fast(**settings)))


@pytest.mark.parametrize("output", ["image", "video", "audio", "text"])
def test_each_output_alone(pipe, output):
    result = run(pipe, [ConditionInput("text", "a bell")], [output])
    if output == "image":
        assert [im.size for im in result.images] == [(64, 64)]
    elif output == "video":
        assert result.videos[0].shape == (3, 64, 64, 3) and result.videos[0].dtype == np.uint8
    elif output == "audio":
        assert result.audios[0].shape == (163872,)
        assert np.all(np.abs(result.audios[0]) <= 1)
    else:  # words, the same ones again for the same seed
        again = run(pipe, [ConditionInput("text", "a bell")], [output])
        assert result.texts[0].strip() and result.texts == again.texts
    assert result.metadata["outputs"] == [output]


def test_connectors_change_a_joint_output_and_switching_them_off_restores_it(pipe):
    inputs, outputs = [ConditionInput("text", "a bell")], ["image", "audio"]
    on = run(pipe, inputs, outputs)
    off = run(pipe, inputs, outputs, connectors=False)
    again_off = run(pipe, inputs, outputs, connectors=False)
    image_on, image_off = (np.asarray(r.images[0], dtype=np.int16) for r in (on, off))
    assert np.abs(image_on - image_off).max() > 0  # the tiny model's connectors act
    assert np.array_equal(np.asarray(off.images[0]), np.asarray(again_off.images[0]))


def test_all_inputs_to_all_outputs_and_files(pipe, tmp_path):
    frames = np.zeros((4, 48, 64, 3), dtype=np.uint8)
    frames[:, :, :32] = 200
    inputs = [
        ConditionInput("text", "rain"),
        ConditionInput("image", picture((200, 30, 30))),
        ConditionInput("audio", sine()),
        ConditionInput("video", frames),
    ]
    result = run(pipe, inputs, ["text", "image", "audio", "video"], num_samples=2)
    assert len(result.images) == len(result.videos) == len(result.audios) == len(result.texts) == 2
    paths = result.save(tmp_path)
    assert paths == result.paths
    suffixes = sorted(p.suffix for p in paths)
    assert suffixes == [".mp4"] * 2 + [".png"] * 2 + [".txt"] * 2 + [".wav"] * 2
    meta = read_png_metadata(next(p for p in paths if p.suffix == ".png"))
    assert meta["settings"]["seed"] == 11
    assert meta["video_audio"]["reconcile"] == "trim_audio"
    assert meta["model"]["kind"] == "tiny-random"
    assert meta["model"]["weights_sha256"]["unet_image"]


def test_same_seed_same_result_other_seed_other_result(pipe):
    text = [ConditionInput("text", "a red square")]
    first = run(pipe, text, ["image", "audio"])
    again = run(pipe, text, ["image", "audio"])
    other = run(pipe, text, ["image", "audio"], seed=12)
    assert np.array_equal(np.asarray(first.images[0]), np.asarray(again.images[0]))
    assert np.array_equal(first.audios[0], again.audios[0])
    assert not np.array_equal(np.asarray(first.images[0]), np.asarray(other.images[0]))


def test_missing_seed_is_drawn_and_recorded(pipe):
    result = run(pipe, [ConditionInput("text", "x")], ["image"], seed=None)
    seed = result.metadata["settings"]["seed"]
    assert isinstance(seed, int)
    replay = run(pipe, [ConditionInput("text", "x")], ["image"], seed=seed)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(replay.images[0]))


def conditioning_of(pipe, inputs, **settings):
    from codi.pipeline.inputs import decode_inputs

    settings = fast(**settings)
    rng = pipe.random_sources(settings.seed, official=False)
    return pipe.encode_conditions(decode_inputs(inputs, pipe.limits), settings, rng)


def test_two_images_are_mixed_by_their_weights(pipe):
    red, blue = picture((220, 20, 20)), picture((20, 20, 220))
    conditioning = conditioning_of(
        pipe, [ConditionInput("image", red, 3.0), ConditionInput("image", blue, 1.0)]
    )
    red_token, blue_token = (e.cond for e in conditioning.encoded)
    uncond, cond = conditioning.context.chunk(2)
    assert torch.allclose(cond, 0.75 * red_token + 0.25 * blue_token, atol=1e-6)
    assert torch.allclose(uncond, conditioning.encoded[0].uncond, atol=1e-6)
    swapped = conditioning_of(
        pipe, [ConditionInput("image", red, 1.0), ConditionInput("image", blue, 3.0)]
    )
    assert not torch.allclose(swapped.context, conditioning.context)


def test_guidance_one_skips_the_unconditional_pass(pipe):
    conditioning = conditioning_of(pipe, [ConditionInput("text", "x")], guidance_scale=1.0)
    assert conditioning.context.shape[0] == 1
    result = run(pipe, [ConditionInput("text", "x")], ["image"], guidance_scale=1.0)
    assert result.images


def test_negative_text_replaces_the_unconditional_token(pipe):
    plain = conditioning_of(pipe, [ConditionInput("text", "x")])
    negative = conditioning_of(pipe, [ConditionInput("text", "x")], negative_text="blurry")
    assert torch.equal(plain.context[1], negative.context[1])
    assert not torch.equal(plain.context[0], negative.context[0])


def test_progress_and_cancellation(pipe):
    seen = []
    run_steps = GenerationRequest([ConditionInput("text", "x")], ["image"], fast(steps=3))
    pipe(run_steps, on_step=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    cancel = threading.Event()

    def stop_after_first(step, total):
        cancel.set()

    with pytest.raises(GenerationCancelled):
        pipe(run_steps, on_step=stop_after_first, cancel=cancel)


@pytest.mark.parametrize(
    "inputs, outputs, settings, message",
    [
        ([], ["image"], {}, "at least one input"),
        ([ConditionInput("text", "x")], [], {}, "at least one output"),
        ([ConditionInput("text", "  ")], ["image"], {}, "text input is empty"),
        ([ConditionInput("text", "x")], ["smell"], {}, "Unknown output"),
        ([ConditionInput("text", "x", -1)], ["image"], {}, "weight"),
        ([ConditionInput("text", "x")], ["image"], {"image_size": 100}, "multiple of 64"),
        ([ConditionInput("text", "x")], ["video"], {"num_frames": 31}, "frames"),
        ([ConditionInput("image", b"not an image")], ["image"], {}, "not an image"),
        ([ConditionInput("audio", np.full(100, np.nan, np.float32))], ["image"], {}, "NaN"),
    ],
)
def test_bad_requests_are_user_errors(pipe, inputs, outputs, settings, message):
    with pytest.raises(CoDiUserError, match=message):
        run(pipe, inputs, outputs, **settings)


def test_video_file_with_its_soundtrack_as_an_extra_input(pipe, tmp_path):
    from codi.media.writers import save_mp4

    frames = np.random.default_rng(0).integers(0, 255, (8, 64, 96, 3), dtype=np.uint8)
    clip = save_mp4(frames, 4.0, tmp_path / "clip.mp4", audio=sine(2.0), audio_rate=16000).path
    result = run(pipe, [ConditionInput("video", clip, use_soundtrack=True)], ["text"])
    modalities = [item["modality"] for item in result.metadata["inputs"]]
    assert modalities == ["video", "audio"]
    assert result.metadata["inputs"][1]["source"].endswith("(soundtrack)")


def test_real_photo_and_recording(pipe, tmp_path):
    from conftest import SHARED

    media = SHARED / "media"
    if not (media / "cat.jpg").exists():
        pytest.skip(f"needs the real test media at {media} (../shared/media is absent)")
    inputs = [
        ConditionInput("image", media / "cat.jpg"),
        ConditionInput("audio", media / "guitar_sound.flac", 0.5),
    ]
    result = run(pipe, inputs, ["image", "audio"])
    paths = result.save(tmp_path)
    assert {p.suffix for p in paths} == {".png", ".wav"}
    assert [i["weight"] for i in result.metadata["inputs"]] == [1.0, 0.5]


def test_joint_text_output_without_guidance_and_one_sample(pipe):
    result = run(pipe, [ConditionInput("text", "x")], ["text", "image"], guidance_scale=1.0)
    assert len(result.texts) == len(result.images) == 1


def test_joint_generation_tells_the_connectors_each_outputs_seconds(pipe, monkeypatch):
    import codi.pipeline.codi_pipeline as pipeline_module

    seen, original = [], pipeline_module.joint_forward

    def spy(*args, **kwargs):
        seen.append(kwargs["durations"])
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "joint_forward", spy)
    result = run(pipe, [ConditionInput("text", "a drum")], ["video", "audio"], fps=4.0)
    assert seen and all(d == seen[0] for d in seen)
    assert seen[0]["video"] == pytest.approx(3 / 4.0)
    assert seen[0]["audio"] == pytest.approx(result.audios[0].shape[0] / 16000, abs=0.01)


def test_the_denoising_loop_stays_on_the_device(pipe, monkeypatch):
    """No step copies a noise prediction or a latent back to the CPU (costly on a GPU)."""
    import torch

    latents = pipe.prepare_latents(["image", "text"], fast(), torch.Generator().manual_seed(1))
    context = torch.zeros(2, 1, pipe.component("unet_image").config.context_dim)
    copies: list[str] = []
    original_cpu = torch.Tensor.cpu

    def counting_cpu(self, *args, **kwargs):
        copies.append("cpu")
        return original_cpu(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    final = pipe.denoise(latents, context, fast(), pipe.random_sources(1, False))
    assert copies == []
    assert all(x.device == pipe.device and x.dtype == torch.float32 for x in final.values())
