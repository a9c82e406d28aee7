"""`python -m codi plan`: components, bytes and peaks, full size (meta device) and embedded."""

from __future__ import annotations

import pytest

from codi import cli
from codi.engine.memory_plan import plan_request
from codi.engine.residency import IMAGE_ONLY


@pytest.fixture(scope="module")
def full_text_to_image():
    return plan_request(["text"], ["image"], "fp16")


def test_full_size_text_to_image_matches_the_reference(full_text_to_image):
    plan = full_text_to_image
    assert [(c.name, c.stage) for c in plan.components] == [
        ("clip_text", "encode"), ("unet_image", "denoise"), ("vae_image", "decode")]
    assert plan.components[1].variant == IMAGE_ONLY
    assert plan.components[1].params == 859_520_964  # SD-1.x core, reference §7.1
    # reference §7.2: 2.07 GB (it counts the SD decoder only; we also hold the VAE encoder)
    assert plan.total_bytes / 1e9 == pytest.approx(2.07, rel=0.10)
    assert plan.peak_bytes("sequential") < plan.peak_bytes("model") < plan.peak_bytes("none")
    assert plan.peak_bytes("model") == plan.components[1].nbytes


def test_precisions_scale_the_bytes():
    fp32 = plan_request(["text"], ["audio"], "fp32")
    fp16 = plan_request(["text"], ["audio"], "fp16")
    int8 = plan_request(["text"], ["audio"], "int8")
    assert fp32.total_bytes == pytest.approx(2 * fp16.total_bytes)
    assert int8.total_bytes < 0.9 * fp16.total_bytes
    assert [c.name for c in fp16.components] == [
        "clip_text", "unet_audio", "vae_audio", "vocoder"]


def test_cli_plan_on_the_embedded_model(capsys):
    assert cli.main(["plan", "--inputs", "text,audio", "--outputs", "image,video",
                     "--dtype", "fp32", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    for name in ("clip_text", "clap", "unet_image", "unet_image_connectors", "vae_image"):
        assert name in out
    assert "no video layers" not in out and "offload=model" in out
    assert cli.main(["plan", "--inputs", "smell", "--outputs", "image"]) == 2


def _opened_by_the_pipeline(monkeypatch, request) -> list[str]:
    """The components the tiny model's pipeline stages for `request`, in order."""
    from codi.pipeline.codi_pipeline import CoDiPipeline
    from codi.store.model_store import resolve_model

    pipe = CoDiPipeline.from_pretrained(resolve_model("tiny").folder)
    staged: list[str] = []
    original = pipe.residency.stage

    def spy(names):
        names = list(names)
        staged.extend(names)
        return original(names)

    monkeypatch.setattr(pipe.residency, "stage", spy)
    pipe(request)
    return staged


@pytest.mark.parametrize("negative, connectors", [(True, False), (False, True)])
def test_the_plan_lists_what_the_pipeline_opens(monkeypatch, negative, connectors):
    from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
    from codi.store.model_store import resolve_model

    settings = GenerationSettings(steps=1, image_size=64, seed=3, connectors=connectors,
                                  negative_text="blurry" if negative else None)
    request = GenerationRequest([ConditionInput("image", _red_png())], ["image", "audio"],
                                settings)
    plan = plan_request(["image"], ["image", "audio"], "fp32", resolve_model("tiny").folder,
                        negative_text=negative, connectors=connectors)
    planned = [c.name for c in plan.components]
    assert planned == _opened_by_the_pipeline(monkeypatch, request)
    assert ("clip_text" in planned) == negative  # the text encoder only for the negative prompt
    assert ("unet_image_connectors" in planned) == connectors


def _red_png():
    from PIL import Image

    return Image.new("RGB", (64, 64), (220, 20, 20))


def test_cli_plan_follows_the_negative_prompt_and_the_connectors_switch(capsys):
    assert cli.main(["plan", "--inputs", "image", "--outputs", "image,audio", "--model", "tiny",
                     "--negative", "--no-connectors"]) == 0
    out = capsys.readouterr().out
    assert "clip_text" in out and "connectors" not in out
