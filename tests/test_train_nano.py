"""The whole CoDi-Nano training command, end to end at one step per stage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codi.nano.config import AUDIO_SAMPLES, IMAGE_SIZE, NUM_FRAMES
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.request import ConditionInput, GenerationRequest
from codi.train.loop import is_done
from codi.train.nano import train_nano

STAGES = ("vae_image", "vae_audio", "vocoder", "optimus", "align_image", "align_video",
          "align_audio", "diffusion_image", "diffusion_audio", "diffusion_text", "connectors")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nano")
    summary = train_nano(root / "run", root / "model", steps=1, cache_scenes=8)
    return root, summary


def test_every_stage_finishes_and_the_export_is_small(trained):
    root, summary = trained
    assert all(is_done(root / "run", stage) for stage in STAGES)
    assert set(STAGES) <= set(summary["stage_seconds"])
    assert all(np.isfinite(v) and v > 0 for v in summary["scale_factors"].values())
    index = json.loads((root / "model" / "model_index.json").read_text())
    assert index["kind"] == "nano" and index["defaults"]["image_size"] == IMAGE_SIZE
    assert index["training"]["cache_scenes"] == 8
    assert "run_dir" not in index["training"]  # no path of the training machine
    assert summary["export_mb"] <= 50
    weight, bias = index["preview_colours"]["weight"], index["preview_colours"]["bias"]
    assert len(weight) == 3 and len(weight[0]) == 4 and len(bias) == 3


def test_the_exported_model_previews_with_its_stored_colours(trained, monkeypatch):
    from codi.pipeline import codi_pipeline

    root, _ = trained
    pipe = CoDiPipeline.from_pretrained(root / "model")
    monkeypatch.setattr(codi_pipeline, "fit_latent_to_rgb",
                        lambda vae: pytest.fail("the stored map was not used"))
    stored = json.loads((root / "model" / "model_index.json").read_text())["preview_colours"]
    np.testing.assert_allclose(pipe.latent_to_rgb().weight.numpy(), stored["weight"], rtol=1e-6)
    previews = []
    request = GenerationRequest([ConditionInput("text", "a red circle")], ["image"],
                                pipe.default_settings(steps=4, seed=3))
    pipe(request, on_preview=previews.append, preview_every=2)
    assert [p.step for p in previews] == [2]


def test_a_second_run_reuses_the_finished_stages(trained):
    root, _ = trained
    stamps = {s: (root / "run" / s / "done.json").stat().st_mtime_ns for s in STAGES}
    train_nano(root / "run", None, steps=1, cache_scenes=8)
    assert {s: (root / "run" / s / "done.json").stat().st_mtime_ns for s in STAGES} == stamps


def test_the_exported_model_gives_all_four_outputs_at_its_own_geometry(trained):
    root, _ = trained
    pipe = CoDiPipeline.from_pretrained(root / "model")
    settings = pipe.default_settings(steps=2, seed=3)
    assert settings.cross_modal and settings.image_size == IMAGE_SIZE
    request = GenerationRequest([ConditionInput("text", "a red circle on the left bouncing")],
                                ["image", "video", "audio", "text"], settings)
    result = pipe(request)
    assert result.images[0].size == (IMAGE_SIZE, IMAGE_SIZE)
    assert result.videos[0].shape == (NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    # the vocoder's output is the mel frames × hop 160, plus its own 32-sample edge
    assert AUDIO_SAMPLES <= result.audios[0].shape[0] < AUDIO_SAMPLES + 160
    assert isinstance(result.texts[0], str)
