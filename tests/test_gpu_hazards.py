"""What breaks or is slow on CUDA, checked on the CPU: quantized residency, channels-last,
torch.compile guards, the OOM retry's cleanup, device-independent text sampling and the
half-precision spots of the audio front ends and VAE posteriors (fp16 runs on CPU for these).
"""

from __future__ import annotations

import math
import types
import weakref

import pytest
import torch

from codi.engine.memory_plan import plan_request
from codi.engine.residency import ResidencyManager
from codi.engine.runtime import RuntimeOptions
from codi.models.clap_features import clap_log_mel, power_spectrogram, prepare_waveform
from codi.models.optimus_decoding import draw_token
from codi.models.vae import encode_audio_posterior, float32_posterior
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings
from codi.store.tiny_random import TINY_RANDOM_DIR
from codi.store.weights import load_component

SETTINGS = GenerationSettings(steps=1, image_size=64, num_frames=2, seed=4)


def tiny(name: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    return load_component(TINY_RANDOM_DIR, name, dtype)


def unet_text_output(unet: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    return unet(torch.randn(2, 768), torch.tensor([10, 10]), torch.randn(2, 1, 32))


# -- quantized components are pinned ---------------------------------------------------------


def test_quantized_component_survives_a_stage_change_with_the_same_output():
    manager = ResidencyManager(tiny, torch.device("cpu"),
                               RuntimeOptions(device="cpu", quantize="int8", offload="model"))
    unet = manager.get("unet_text")
    before = unet_text_output(unet)
    manager.get("vae_image")  # not quantizable: it leaves at the next stage change
    manager.stage(["vocoder"])
    assert manager.resident() == ["unet_text"]
    assert manager.get("unet_text") is unet and manager.opened.count(("unet_text", None)) == 1
    assert torch.equal(unet_text_output(unet), before)


def test_budget_passes_over_quantized_components():
    options = RuntimeOptions(device="cpu", quantize="int8", memory_budget_gb=1e-9)
    manager = ResidencyManager(tiny, torch.device("cpu"), options)
    manager.get("unet_text")
    manager.get("clip_text")
    assert manager.resident() == ["unet_text", "clip_text"]


def test_model_offload_plan_keeps_quantized_components_in_every_stage():
    int8 = plan_request(["text"], ["image"], "int8")
    assert [c.pinned for c in int8.components] == [True, True, False]  # clip, unet, vae
    assert int8.peak_bytes("model") == int8.total_bytes  # the decoders join the pinned two
    fp16 = plan_request(["text"], ["image"], "fp16")
    assert fp16.peak_bytes("model") < fp16.total_bytes


# -- channels-last and torch.compile ---------------------------------------------------------


def final_video_latents(pipe: CoDiPipeline) -> torch.Tensor:
    rng = pipe.random_sources(SETTINGS.seed, False)
    inputs = [types.SimpleNamespace(modality="text", value="a bell", weight=1.0)]
    conditioning = pipe.encode_conditions(inputs, SETTINGS, rng)
    latents = pipe.prepare_latents(["video"], SETTINGS, rng.torch_generator)
    return pipe.denoise(latents, conditioning.context, SETTINGS, rng)["video"]


def test_channels_last_reaches_only_2d_convolutions_and_changes_no_output():
    expected = final_video_latents(CoDiPipeline.from_pretrained(TINY_RANDOM_DIR))
    pipe = CoDiPipeline.from_pretrained(
        TINY_RANDOM_DIR, runtime=RuntimeOptions(device="cpu", dtype="fp32", channels_last=True))
    got = final_video_latents(pipe)  # the video UNet holds Conv3d layers
    # Channels-last kernels sum in another order: float32 rounding, grown over the steps.
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    unet = pipe.component("unet_image")
    convs = [m for m in unet.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    assert any(isinstance(m, torch.nn.Conv3d) for m in convs)
    for m in convs:
        layout = torch.contiguous_format if m.weight.dim() == 5 else torch.channels_last
        assert m.weight.is_contiguous(memory_format=layout)


def test_channels_last_with_quantization_keeps_the_quantized_output():
    plain = RuntimeOptions(device="cpu", quantize="int8").apply(
        "unet_audio", tiny("unet_audio"), torch.device("cpu"))
    both = RuntimeOptions(device="cpu", quantize="int8", channels_last=True).apply(
        "unet_audio", tiny("unet_audio"), torch.device("cpu"))
    torch.manual_seed(1)
    x, ctx = torch.randn(1, 8, 16, 16), torch.randn(1, 1, 32)
    t = torch.tensor([5])
    torch.testing.assert_close(both(x, t, ctx), plain(x, t, ctx), rtol=0, atol=1e-5)


@pytest.mark.parametrize("options, compiled", [
    ({}, True), ({"quantize": "int8"}, False), ({"offload": "sequential"}, False),
], ids=["plain", "quantized", "sequential"])
def test_compile_is_skipped_where_it_would_fight_offload_or_quantization(options, compiled):
    module = RuntimeOptions(device="cpu", compile=True, **options).apply(
        "unet_text", tiny("unet_text"), torch.device("cpu"))
    assert ("forward" in vars(module)) is compiled  # torch.compile wraps the instance's forward


# -- out of memory: the failed attempt is freed before the retry -----------------------------


def test_out_of_memory_cleanup_frees_the_failed_attempt_and_retries_once(monkeypatch):
    pipe = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    held: list[weakref.ref] = []
    calls: list[int] = []

    def flaky(*args):
        calls.append(len(emptied))
        if len(calls) == 1:
            activations = torch.zeros(1000)  # what the failed attempt's frame holds
            held.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        assert held[0]() is None, "the failed attempt's tensors are still alive"
        return types.SimpleNamespace(metadata={"notices": []})

    monkeypatch.setattr(pipe, "_generate", flaky)
    result = pipe(GenerationRequest([ConditionInput("text", "x")], ["image"], SETTINGS))
    assert len(calls) == 2 and calls[1] >= 1  # one retry, after the cache was emptied
    assert "retried with offload=model" in result.metadata["notices"][0]


def test_out_of_memory_twice_empties_the_cache_after_the_failure(monkeypatch):
    from codi.errors import CoDiUserError

    pipe = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)
    emptied: list[int] = []
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))

    def always(*args):
        calls.append(len(emptied))
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pipe, "_generate", always)
    with pytest.raises(CoDiUserError, match="Not enough memory"):
        pipe(GenerationRequest([ConditionInput("text", "x")], ["image"], SETTINGS))
    assert len(calls) == 2 and len(emptied) > calls[1]


# -- text sampling draws on the CPU ----------------------------------------------------------


def test_text_is_the_same_whichever_device_the_pipeline_names():
    settings = GenerationSettings(steps=1, seed=9)
    latents = {"text": torch.randn(2, 768, generator=torch.Generator().manual_seed(2))}
    cpu = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)
    expected = cpu.decode(latents, settings, torch.Generator().manual_seed(9)).texts
    gpu_named = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)
    gpu_named.device = torch.device("cuda")  # its components still open on the CPU here
    got = gpu_named.decode(latents, settings, torch.Generator().manual_seed(9)).texts
    assert got == expected and len(set(expected)) == 2


def test_draw_token_follows_the_cpu_generator():
    probs = torch.softmax(torch.randn(50, generator=torch.Generator().manual_seed(0)), dim=0)
    draws = [draw_token(probs.half(), torch.Generator().manual_seed(5)) for _ in range(2)]
    reference = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(5))
    assert draws[0].dtype == torch.long and torch.equal(draws[0], draws[1])
    assert torch.equal(draws[0], reference)


# -- half precision in the audio front ends and VAE posteriors -------------------------------


def loud_square_wave(seconds: float = 1.0) -> torch.Tensor:
    """A full-scale 1 kHz square wave at 16 kHz: its STFT power exceeds fp16's range."""
    t = torch.arange(int(16000 * seconds)) / 16000
    return torch.sign(torch.sin(2 * math.pi * 1000 * t))[None]


def test_clap_front_end_runs_fp32_for_a_half_waveform():
    wave = loud_square_wave()
    assert not torch.isfinite(power_spectrogram(prepare_waveform(wave).half())).all()  # hazard
    expected = clap_log_mel(wave)
    got = clap_log_mel(wave.half())
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=0, atol=0.05)  # the input's fp16 rounding


def test_audio_vae_posterior_of_a_half_vae_is_finite_and_close_to_fp32():
    wave = 0.8 * loud_square_wave(2.0)
    expected = encode_audio_posterior(tiny("vae_audio"), wave, 2.0)
    got = encode_audio_posterior(tiny("vae_audio", torch.float16), wave.half(), 2.0)
    assert got.mean.dtype == torch.float32 and torch.isfinite(got.var).all()
    torch.testing.assert_close(got.mean, expected.mean, rtol=0.02, atol=0.02)


def test_float32_posterior_keeps_a_large_variance_finite():
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    params = torch.cat([torch.zeros(1, 4, 2, 2), torch.full((1, 4, 2, 2), 15.0)], dim=1).half()
    assert torch.isinf(DiagonalGaussianDistribution(params).var).all()  # e^15 > 65504
    upcast = float32_posterior(DiagonalGaussianDistribution(params))
    assert torch.allclose(upcast.var, torch.full_like(upcast.var, math.exp(15)), rtol=1e-3)
