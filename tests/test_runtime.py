"""RuntimeOptions, attention backends, quantization, precision and offload against float32.

Tolerances (embedded tiny random model, text → image and text → text, 2 DDIM steps, final
latents of max |x| ≈ 7): offload "model"/"sequential" and a memory budget are bit-identical to the
default; bf16 and int8 stay within 0.25 max abs on the image latents (measured 0.15 and 0.006;
relative L2 error 2e-2 and 1e-3). Reduced precision is not compared on the tiny text UNet: its
GroupNorms see two values per group (32 groups of 64 features), so any rounding flips them (its
fp32 → bf16 error is O(1) after one forward); the full-size groups hold 40 values. fp16 is not
tested on CPU (slow, and some CPU ops lack it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from codi.engine import runtime as runtime_module
from codi.engine.quantization import is_quantized, quantize_linears
from codi.engine.runtime import RuntimeOptions, component_dtype, cpu_has_native_bf16
from codi.errors import CoDiUserError
from codi.models.attention import resolve_attention_backend, set_attention_backend
from codi.pipeline.codi_pipeline import CoDiPipeline
from codi.pipeline.request import ConditionInput, GenerationSettings
from codi.store.tiny_random import TINY_RANDOM_DIR
from codi.store.weights import load_component

SETTINGS = GenerationSettings(steps=2, image_size=64, seed=3)


def test_options_from_env_and_overrides():
    env = {"CODI_DTYPE": "BF16", "CODI_OFFLOAD": "model", "CODI_MEMORY_BUDGET_GB": "6.5",
           "CODI_ATTENTION": "classic", "CODI_QUANTIZE": "int8", "CODI_DEVICE": "cpu"}
    options = RuntimeOptions.from_env(env, offload="none")
    assert (options.dtype, options.offload, options.memory_budget_gb) == ("bf16", "none", 6.5)
    assert (options.attention, options.quantize) == ("classic", "int8")
    assert options.torch_dtype(torch.device("cpu")) is torch.bfloat16
    assert RuntimeOptions().torch_dtype(torch.device("cuda")) is torch.float16
    assert not options.engine_is_default() and RuntimeOptions(dtype="bf16").engine_is_default()


@pytest.mark.parametrize("bad", [{"offload": "disk"}, {"dtype": "fp8"}, {"memory_budget_gb": -1},
                                 {"quantize": "int8", "offload": "sequential"}])
def test_bad_options_are_user_errors(bad):
    with pytest.raises(CoDiUserError):
        RuntimeOptions(**bad)
    with pytest.raises(CoDiUserError, match="not a number"):
        RuntimeOptions.from_env({"CODI_MEMORY_BUDGET_GB": "lots"})


def test_xformers_falls_back_to_sdpa_without_cuda():
    unet = load_component(TINY_RANDOM_DIR, "unet_image")
    assert resolve_attention_backend("xformers", "cpu") == "sdpa"
    assert set_attention_backend(unet, "classic") > 0
    assert set_attention_backend(unet, "xformers", "cpu") > 0
    assert processor_types(unet) == {AttnProcessor2_0}
    set_attention_backend(unet, "classic")
    assert processor_types(unet) == {AttnProcessor}


def processor_types(module: torch.nn.Module) -> set[type]:
    return {type(m.processor) for m in module.modules() if hasattr(m, "set_processor")}


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantized_linears_stay_close(mode):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.GELU(), torch.nn.Linear(256, 8))
    x = torch.randn(4, 128)
    expected = model(x)
    assert quantize_linears(model, mode) == 1  # the 8-wide layer stays in full precision
    assert is_quantized(model) and type(model[2]) is torch.nn.Linear
    error = (model(x).float() - expected).abs().max().item()
    assert error < (0.02 if mode == "int8" else 0.1) * expected.abs().max().item()


def final_latents(pipe: CoDiPipeline, output: str) -> torch.Tensor:
    rng = pipe.random_sources(SETTINGS.seed, False)
    inputs = [type("Input", (), {"modality": "text", "value": "a bell", "weight": 1.0})()]
    conditioning = pipe.encode_conditions(inputs, SETTINGS, rng)
    latents = pipe.prepare_latents([output], SETTINGS, rng.torch_generator)
    return pipe.denoise(latents, conditioning.context, SETTINGS, rng)[output]


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    pipe = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)
    return {o: final_latents(pipe, o) for o in ("image", "text")}


@pytest.mark.parametrize("options, atol, outputs", [
    (RuntimeOptions(dtype="fp32", offload="model"), 0.0, ("image", "text")),
    (RuntimeOptions(dtype="fp32", offload="sequential"), 0.0, ("image", "text")),
    (RuntimeOptions(dtype="fp32", memory_budget_gb=1e-6), 0.0, ("image", "text")),
    (RuntimeOptions(dtype="bf16"), 0.25, ("image",)),
    (RuntimeOptions(dtype="fp32", quantize="int8"), 0.25, ("image",)),
], ids=["offload-model", "offload-sequential", "tiny-budget", "bf16", "int8"])
def test_runtime_outputs_match_fp32(reference, options, atol, outputs):
    pipe = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR, runtime=options.replace(device="cpu"))
    for output in outputs:
        expected = reference[output]
        got = final_latents(pipe, output)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        error = (got - expected).abs().max().item()
        assert error <= atol, f"{output}: {error}"
    if options.quantize == "int8":
        assert is_quantized(pipe.component("unet_image"))


def test_runtime_is_recorded_in_metadata():
    from codi.pipeline.request import GenerationRequest

    pipe = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR, runtime=RuntimeOptions(
        device="cpu", dtype="fp32", attention="xformers"))
    result = pipe(GenerationRequest([ConditionInput("text", "x")], ["image"], SETTINGS))
    runtime = result.metadata["runtime"]
    assert runtime["attention"] == "sdpa" and runtime["dtype"] == "float32"
    assert np.asarray(result.images[0]).shape == (64, 64, 3)


def test_quantized_text_unet_runs_with_every_linear_quantized():
    """Its time embedding stays in full precision (the UNet reads that layer's dtype)."""
    unet = load_component(TINY_RANDOM_DIR, "unet_text")
    assert quantize_linears(unet, "int8", min_features=1) > 0
    assert type(unet.time_embed.linear_1) is torch.nn.Linear
    out = unet(torch.randn(2, 768), torch.tensor([10, 10]), torch.randn(2, 1, 32))
    assert out.shape == (2, 768) and torch.isfinite(out).all()


CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {extra}\nbogomips\t: 1\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(CPUINFO.format(extra="avx512_bf16"))
    assert cpu_has_native_bf16(CPUINFO.format(extra="amx_bf16 amx_tile"))
    assert not cpu_has_native_bf16(CPUINFO.format(extra="avx512bw"))  # emulated bf16 only


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_a_cpu_is_bf16_only_where_it_is_native(monkeypatch, native, expected):
    monkeypatch.setattr(runtime_module, "cpu_has_native_bf16", lambda: native)
    assert RuntimeOptions().torch_dtype(torch.device("cpu")) is expected
    assert RuntimeOptions(dtype="fp32").torch_dtype(torch.device("cpu")) is torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_bf16_forced_on_a_cpu_warns_once_only_where_it_is_emulated(monkeypatch, caplog, native):
    monkeypatch.setattr(runtime_module, "cpu_has_native_bf16", lambda: native)
    runtime_module.warn_emulated_bf16.cache_clear()
    with caplog.at_level("WARNING", logger=runtime_module.logger.name):
        for _ in range(2):
            assert RuntimeOptions(dtype="bf16").torch_dtype(torch.device("cpu")) is torch.bfloat16
        RuntimeOptions(dtype="bf16").torch_dtype(torch.device("cuda"))  # a GPU: never
    warned = [r for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warned) == (0 if native else 1)


def test_a_bf16_cpu_run_keeps_the_audio_decoders_in_float32():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert component_dtype("vocoder", torch.bfloat16, cpu) is torch.float32
    assert component_dtype("vae_audio", torch.bfloat16, cpu) is torch.float32
    assert component_dtype("unet_audio", torch.bfloat16, cpu) is torch.bfloat16
    assert component_dtype("vocoder", torch.float16, gpu) is torch.float16
    pipe = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR, dtype=torch.bfloat16)
    from codi.pipeline.request import GenerationRequest

    result = pipe(GenerationRequest([ConditionInput("text", "x")], ["audio"], SETTINGS))
    assert pipe.component("vocoder").dtype == torch.float32
    assert pipe.component("unet_audio").dtype == torch.bfloat16
    assert np.isfinite(result.audios[0]).all()
