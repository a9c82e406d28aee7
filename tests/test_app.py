"""The studio's pieces that need no server: form → request, status, ZeroGPU sizing, flags,
history thumbnails, examples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from codi.errors import CoDiUserError
from codi.pipeline.request import GenerationRequest, GenerationSettings
from codi.pipeline.result import GenerationResult
from codi.store.model_store import resolve_model
from ui.examples import EXAMPLES
from ui.form import FIELDS, default_form, describe_inputs, request_from_form
from ui.history import HistoryEntry, entry_at, gallery_items
from ui.status import model_details_markdown, status_markdown
from ui.zerogpu import MAX_SECONDS, MIN_SECONDS, estimate_gpu_seconds, gpu_task


def form(**values):
    return default_form() | values


def test_form_fields_are_the_defaults_keys():
    assert set(default_form()) == set(FIELDS)


def test_only_switched_on_and_filled_slots_become_inputs(tmp_path):
    picture = tmp_path / "a.png"
    request = request_from_form(form(
        text="  a bell  ", text_weight=0.5, text2="ignored: slot off",
        image=str(picture), image_on=False, audio=None, outputs=["image", "audio"],
    ))
    assert [(i.modality, i.value, i.weight) for i in request.inputs] == [("text", "a bell", 0.5)]
    assert request.outputs == ["image", "audio"]


def test_second_slots_and_soundtrack(tmp_path):
    request = request_from_form(form(
        text="rain", text2="jazz", text2_on=True, text2_weight=0.25,
        video=str(tmp_path / "v.mp4"), video_soundtrack=True, outputs=["text"],
    ))
    assert [(i.modality, i.weight) for i in request.inputs] == [
        ("text", 1.0), ("text", 0.25), ("video", 1.0)]
    assert request.inputs[2].use_soundtrack
    assert describe_inputs(form(text="rain", video="v.mp4", video_soundtrack=True)) == (
        "text ×1, video ×1 + soundtrack")


def test_seed_randomised_below_2_pow_32_or_kept():
    seeds = {request_from_form(form(text="x")).settings.seed for _ in range(5)}
    assert all(0 <= s < 2**32 for s in seeds) and len(seeds) > 1
    fixed = request_from_form(form(text="x", seed=42.0, randomize_seed=False))
    assert fixed.settings.seed == 42


@pytest.mark.parametrize("values, message", [
    ({}, "at least one input"),
    ({"text": "x", "outputs": []}, "at least one output"),
    ({"text": "x", "steps": 2.5}, "whole number"),
    ({"text": "x", "image_size": 100}, "multiple of 64"),
    ({"text": "x", "text_weight": "heavy"}, "not a number"),
])
def test_form_mistakes_are_user_errors(values, message):
    with pytest.raises(CoDiUserError, match=message):
        request_from_form(form(**values))


def test_status_of_embedded_model_says_how_to_get_the_full_one():
    text = status_markdown(resolve_model("tiny"), "cpu", "float32")
    assert "tiny random" in text and "python -m codi download" in text
    assert "float32" in text and "cpu" in text and "RAM" in text


def test_status_of_nano_says_what_it_knows_and_how_to_get_the_full_one(tmp_path):
    from codi.store.model_store import ResolvedModel

    text = status_markdown(ResolvedModel(tmp_path, "nano", ""), "cpu", "float32")
    assert "CoDi-Nano" in text and "red circle" in text and "python -m codi download" in text


def test_model_details_list_components_and_absent_connectors(tmp_path):
    import json

    (tmp_path / "unet_image").mkdir()
    (tmp_path / "unet_image" / "config.json").write_text("{}")
    report = {"absent": {"unet_image_connectors": "no weights"}, "filled_with_official_init": {}}
    (tmp_path / "conversion_report.json").write_text(json.dumps(report))
    text = model_details_markdown(tmp_path)
    assert "`unet_image`" in text and "unet_image_connectors` absent" in text


def test_gpu_duration_grows_with_the_request_and_is_clamped():
    def seconds(outputs, **settings):
        return estimate_gpu_seconds(GenerationRequest([], outputs, GenerationSettings(**settings)))

    small = seconds(["image"], steps=10)
    assert small == MIN_SECONDS
    assert seconds(["image", "audio"], steps=50) > seconds(["image"], steps=50)
    assert seconds(["video"], steps=50, num_frames=16) > seconds(["video"], steps=50)
    assert seconds(["image"], steps=200, guidance_scale=1.0) < seconds(["image"], steps=200)
    assert seconds(["video", "audio"], steps=1000, num_samples=4) == MAX_SECONDS


def test_gpu_task_is_a_no_op_without_spaces():
    def f(x):
        return x + 1

    assert gpu_task(duration=lambda x: 60)(f) is f


def test_flags_fall_back_to_the_environment(monkeypatch):
    import app

    monkeypatch.setenv("CODI_HOST", "0.0.0.0")
    monkeypatch.setenv("CODI_PORT", "9000")
    monkeypatch.setenv("CODI_SHARE", "true")
    monkeypatch.setenv("CODI_AUTH", "ann:secret,bob:pw")
    monkeypatch.setenv("CODI_WORKERS", "2")
    args = app.parse_args([])
    assert (args.host, args.port, args.share, args.workers) == ("0.0.0.0", 9000, True, 2)
    assert app.parse_auth(args.auth) == [("ann", "secret"), ("bob", "pw")]
    args = app.parse_args(["--port", "7000", "--queue-size", "3", "--model", "embedded"])
    assert (args.port, args.queue_size, args.model) == (7000, 3, "embedded")
    with pytest.raises(SystemExit):
        app.parse_auth("no-colon")


@pytest.mark.parametrize("kind", ["images", "videos", "audios", "texts"])
def test_history_thumbnails_for_every_output(tmp_path, kind):
    value = {
        "images": [Image.new("RGB", (64, 48), (200, 0, 0))],
        "videos": [np.full((3, 32, 32, 3), 90, dtype=np.uint8)],
        "audios": [np.sin(np.linspace(0, 100, 16000)).astype(np.float32)],
        "texts": ["a long generated sentence " * 4],
    }[kind]
    path = GenerationResult(**{kind: value}).save_thumbnail(tmp_path / "t.png")
    picture = np.asarray(Image.open(path))
    assert picture.shape == (256, 256, 3)
    if kind == "images":
        assert picture.mean(axis=(0, 1)).round().tolist() == [200, 0, 0]
    elif kind == "videos":
        assert np.all(picture == 90)
    else:  # a drawn card: waveform or words on a background
        assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 1


def test_history_gallery_lists_newest_first():
    class Result:
        def __init__(self, n):
            self.thumbnail, self.outputs, self.seed = f"{n}.png", ["image"], n
            self.metadata = {"inputs": [{"modality": "text"}]}

    history = [HistoryEntry({}, Result(n), n) for n in (1, 2, 3)]
    assert [item[0] for item in gallery_items(history)] == ["3.png", "2.png", "1.png"]
    assert gallery_items(history)[0][1] == "#3 text → image · seed 3"
    assert entry_at(history, 0).number == 3 and entry_at(history, 2).number == 1


def test_examples_exist_and_are_valid_requests():
    assert len(EXAMPLES) >= 5
    outputs = [set(ex.form()["outputs"]) for ex in EXAMPLES]
    assert {"text", "image", "audio", "video"} in outputs  # a multi-output case with all four
    for example in EXAMPLES:
        assert all(path.is_file() for path in example.files()), example.title
        request = request_from_form(example.form(tiny_random=True))
        assert request.settings.steps == 10
    assert any(len(request_from_form(ex.form()).inputs) > 1 for ex in EXAMPLES)


def test_nano_examples_are_valid_requests_at_the_models_defaults():
    from codi.nano.config import NANO_DEFAULTS
    from ui.examples import NANO_EXAMPLES, examples_for

    assert examples_for("nano") == NANO_EXAMPLES and examples_for("full") == EXAMPLES
    for example in NANO_EXAMPLES:
        assert all(path.is_file() for path in example.files()), example.title
        request = request_from_form(example.form(model_defaults=NANO_DEFAULTS))
        assert request.settings.image_size == NANO_DEFAULTS["image_size"]
    outputs = set().union(*(ex.form()["outputs"] for ex in NANO_EXAMPLES))
    assert outputs == {"text", "image", "audio", "video"}


def test_the_form_carries_the_sampler_into_the_request():
    form = default_form()
    assert form["sampler"] == "ddim"
    assert request_from_form(form | {"text": "a bell", "sampler": "euler"}).settings.sampler == (
        "euler")
    with pytest.raises(CoDiUserError, match="Sampler 'plms'"):
        request_from_form(form | {"text": "a bell", "sampler": "plms"})


def test_starts_of_chosen_outputs_join_the_request_with_their_strength(tmp_path):
    from ui.form import describe_starts

    picture, sound = tmp_path / "a.png", tmp_path / "b.wav"
    values = form(text="a bell", outputs=["image", "audio"], start_image=str(picture),
                  start_image_strength=0.25, start_audio={"path": str(sound)},
                  start_video=str(tmp_path / "unused.mp4"))
    request = request_from_form(values)
    assert [(s.modality, s.value, s.strength) for s in request.starts] == [
        ("image", picture, 0.25), ("audio", sound, 0.6)]
    assert describe_starts(values) == ("image from a file at strength 0.25, "
                                       "audio from a file at strength 0.6")
    # video is not an output: its start is left out, as the page hides it
    assert request_from_form(values | {"outputs": ["text"]}).starts == []
    with pytest.raises(CoDiUserError, match="from 0"):
        request_from_form(values | {"start_image_strength": 1.5})
    with pytest.raises(CoDiUserError, match="not a number"):
        request_from_form(values | {"start_image_strength": "lots"})


def test_use_as_start_takes_the_selected_image_and_keeps_its_output():
    from ui.handlers import use_as_start

    gallery = [("/r/one.png", None), ("/r/two.png", None)]
    path, outputs, opened = use_as_start("image")(gallery, ["text"], 1)
    assert path == "/r/two.png" and outputs == ["text", "image"] and opened["open"] is True
    assert use_as_start("image")(gallery, ["image"], 7)[:2] == ["/r/one.png", ["image"]]
    assert use_as_start("audio")("/r/a.wav", ["audio"])[0] == "/r/a.wav"
    assert use_as_start("video")({"video": {"path": "/r/v.mp4"}}, [])[:2] == [
        "/r/v.mp4", ["video"]]
    with pytest.raises(CoDiUserError, match="no audio result yet"):
        use_as_start("audio")(None, ["audio"])


def test_on_zerogpu_every_component_is_placed_on_cuda_at_start_up(monkeypatch):
    import types

    from codi.engine.runtime import RuntimeOptions
    from ui import zerogpu

    asked = RuntimeOptions(device="auto", offload="model", memory_budget_gb=6.0, dtype="bf16")
    assert zerogpu.zerogpu_runtime(asked) == asked  # no `spaces`: unchanged
    fake_spaces = types.SimpleNamespace(GPU=lambda duration: (lambda fn: ("on gpu", fn)))
    monkeypatch.setattr(zerogpu, "spaces", fake_spaces)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.zerogpu_runtime(asked) == asked  # `spaces` but not a ZeroGPU Space
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    placed = zerogpu.zerogpu_runtime(asked)
    assert (placed.device, placed.offload, placed.memory_budget_gb, placed.dtype) == (
        "cuda", "none", None, "bf16")
    assert zerogpu.gpu_task(duration=lambda x: 60)(len) == ("on gpu", len)
