"""Per-request residency: a request opens only what it needs; offload, budgets, OOM retry."""

from __future__ import annotations

import pytest
import torch

from codi.engine.residency import IMAGE_ONLY
from codi.engine.runtime import RuntimeOptions
from codi.errors import CoDiUserError
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.store.tiny_random import TINY_RANDOM_DIR

SETTINGS = GenerationSettings(steps=1, image_size=64, num_frames=2, seed=5)


def request(outputs: list[str], text: str = "a lighthouse") -> GenerationRequest:
    return GenerationRequest([ConditionInput("text", text)], outputs, SETTINGS)


def fresh(**options) -> CoDiPipeline:
    runtime = RuntimeOptions(device="cpu", dtype="fp32", **options) if options else None
    return CoDiPipeline.from_pretrained(TINY_RANDOM_DIR, runtime=runtime)


def test_text_to_image_opens_exactly_its_components():
    pipe = fresh()
    pipe(request(["image"]))
    assert sorted(pipe.residency.loaded()) == ["clip_text", "unet_image", "vae_image"]
    assert pipe.residency.variant_of("unet_image") == IMAGE_ONLY  # no video layers read
    unet = pipe.component("unet_image", IMAGE_ONLY)
    assert not any("temporal" in n for n, _ in unet.named_modules())


def test_video_reopens_the_unet_with_its_video_layers_and_serves_images_after():
    pipe = fresh()
    pipe(request(["image"]))
    pipe(request(["video"]))
    assert pipe.residency.variant_of("unet_image") is None
    pipe(request(["image"]))
    assert pipe.residency.opened.count(("unet_image", None)) == 1  # the full UNet serves images


def test_offload_model_keeps_only_the_last_stage():
    pipe = fresh(offload="model")
    pipe(request(["image", "audio"]))
    assert sorted(pipe.residency.resident()) == ["vae_audio", "vae_image", "vocoder"]
    assert {n for n, _ in pipe.residency.opened} == {
        "clip_text", "unet_image", "unet_audio", "unet_image_connectors",
        "unet_audio_connectors", "vae_image", "vae_audio", "vocoder",
    }


def test_budget_evicts_least_recently_used():
    pipe = fresh()
    pipe(request(["image"]))
    sizes = {n: pipe.residency._entries[n].nbytes for n in pipe.residency.loaded()}
    budget = (sizes["unet_image"] + sizes["vae_image"] + 1) / 1e9
    pipe = fresh(memory_budget_gb=budget)
    pipe(request(["image"]))
    assert "clip_text" not in pipe.residency.resident()  # the encoder was first out
    assert pipe.residency.resident_bytes() <= budget * 1e9


def test_out_of_memory_retries_once_with_more_offloading(monkeypatch):
    pipe = fresh()
    real = pipe._generate
    calls = []

    def flaky(*args):
        calls.append(pipe.runtime.offload)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args)

    monkeypatch.setattr(pipe, "_generate", flaky)
    result = pipe(request(["image"]))
    assert calls == ["none", "model"] and pipe.runtime.offload == "model"
    assert any("retried with offload=model" in n for n in result.metadata["notices"])


def test_out_of_memory_twice_is_a_user_error_and_the_pipeline_keeps_serving(monkeypatch):
    pipe = fresh()
    real = pipe._generate
    monkeypatch.setattr(pipe, "_generate", lambda *a: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(CoDiUserError, match="Not enough memory"):
        pipe(request(["image"]))
    assert pipe.residency.loaded() == []
    monkeypatch.setattr(pipe, "_generate", real)
    assert len(pipe(request(["image"])).images) == 1


def test_out_of_memory_frees_the_cached_blocks_before_the_retry_and_after_giving_up(monkeypatch):
    """CUDA keeps freed blocks cached: each failed attempt is followed by `empty_cache`."""
    events: list[str] = []
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.empty_cache", lambda: events.append("empty_cache"))
    pipe = fresh()
    real = pipe._generate

    def flaky(*args):
        events.append("attempt")
        if events.count("attempt") == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args)

    monkeypatch.setattr(pipe, "_generate", flaky)
    pipe(request(["image"]))
    assert events == ["attempt", "empty_cache", "attempt"]

    events.clear()

    def out_of_memory(*args):
        events.append("attempt")
        raise MemoryError

    monkeypatch.setattr(pipe, "_generate", out_of_memory)
    with pytest.raises(CoDiUserError, match="Not enough memory"):
        pipe(request(["image"]))  # offload=model escalates once more, to sequential
    assert events == ["attempt", "empty_cache", "attempt", "empty_cache"]
