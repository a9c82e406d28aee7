"""CLAP audio encoder: front end, key mapping, embeddings against the official fixtures."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from codi.convert.maps.clap import SPECS
from codi.convert.spec import UnknownKeyError
from codi.models.clap import CodiClapAudioModel
from codi.models.clap_features import MAX_SAMPLES, clap_log_mel, crop_offset, fit_length, resample
from codi.models.official_config import OfficialConfig
from codi.parity.tolerances import FORWARD_ATOL, LOG_MEL_DB_ATOL

SPEC = SPECS[0]
PREFIX = "clap.model."


def _convert(official_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    ours: dict[str, torch.Tensor] = {}
    for key, tensor in official_state.items():
        if not key.startswith(PREFIX) or SPEC.unused_reason(key[len(PREFIX):]):
            continue
        for our_key, value in SPEC.map_tensor(key[len(PREFIX):], tensor):
            assert our_key not in ours, our_key
            ours[our_key] = value
    return ours


@pytest.fixture(scope="module")
def clap_fixture(fixture_dir):
    return load_file(str(fixture_dir / "clap.safetensors"))


@pytest.fixture(scope="module")
def tiny_clap(tiny_official, tiny_weights) -> CodiClapAudioModel:
    model = SPEC.build(tiny_official).eval()
    model.load_state_dict(_convert(tiny_weights), strict=True)
    return model


def test_resample_matches_torchaudio_fixture(clap_fixture):
    wave = clap_fixture["long_wave_16k"]
    out = resample(wave)
    assert out.shape[-1] == math.ceil(3 * wave.shape[-1])
    expected = clap_fixture["long_wave_48k_first16"]
    assert torch.equal(out.reshape(-1)[: expected.numel()], expected)


def test_log_mel_matches_fixture(clap_fixture):
    log_mel = clap_log_mel(clap_fixture["wave_16k"])
    assert log_mel.shape == (1, 1, 1001, 64)
    assert (log_mel - clap_fixture["logmel"]).abs().max() <= LOG_MEL_DB_ATOL


def test_repeat_pad_and_crops():
    short = torch.arange(1, 130_001, dtype=torch.float32)  # tiles 3 times, then zeros
    padded = fit_length(short)
    assert padded.shape == (MAX_SAMPLES,)
    assert torch.equal(padded[:390_000], short.repeat(3)) and not padded[390_000:].any()
    long = torch.arange(MAX_SAMPLES + 1000, dtype=torch.float32)
    assert fit_length(long, "start")[0] == 0 and fit_length(long, "center")[0] == 500
    with pytest.raises(ValueError):
        crop_offset(MAX_SAMPLES + 1, "middle")


def test_official_crop_reproduces_numpy_draws(fixture_dir):
    extra = json.loads((fixture_dir / "index.json").read_text())["clap"]["extra"]
    total = extra["long_total_48k_samples"]
    seed = extra["params"]["np_random_seed"]
    offset = extra["long_crop_offset_48k"]
    assert crop_offset(total, "official", np.random.RandomState(seed)) == offset
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        assert crop_offset(total, "official") == offset
    finally:
        np.random.set_state(state)


def test_embeddings_match_fixture(tiny_clap, clap_fixture):
    t = clap_fixture
    with torch.no_grad():
        embed = tiny_clap.encode_audio(t["wave_16k"])
        zero = tiny_clap.encode_audio(torch.zeros_like(t["wave_16k"]))
        long = tiny_clap.encode_audio(t["long_wave_16k"], "official", np.random.RandomState(0))
        centred = tiny_clap.encode_audio(t["long_wave_16k"])
    assert embed.shape == (1, 1, 32)
    assert torch.allclose(embed.norm(dim=-1), torch.ones(1, 1))
    assert (embed - t["audio_embed"]).abs().max() <= FORWARD_ATOL
    assert (zero - t["zero_audio_embed"]).abs().max() <= FORWARD_ATOL
    assert (long - t["long_audio_embed_npseed0"]).abs().max() <= FORWARD_ATOL
    assert (centred - long).abs().max() > FORWARD_ATOL  # the crop offset matters


def test_dropped_buffers_are_what_we_recompute(tiny_clap, tiny_weights):
    """The official attn_mask buffers equal transformers' run-time masks; indices are mapped."""
    masks = {k: v for k, v in tiny_weights.items() if k.endswith(".attn_mask")}
    assert masks
    encoder = tiny_clap.audio_model.audio_encoder
    for key, official_mask in masks.items():
        layer, block = (int(p) for p in key.split(".")[4:7:2])
        module = encoder.layers[layer].blocks[block]
        height, width = encoder.input_resolutions[layer]
        ours = module.get_attn_mask(height, width, torch.float32, torch.device("cpu"))
        assert torch.equal(ours, official_mask), key


def test_unused_and_unknown_keys():
    for key in (
        "audio_branch.spectrogram_extractor.stft.conv_real.weight",
        "audio_branch.spectrogram_extractor.stft.conv_imag.weight",
        "audio_branch.logmel_extractor.melW",
        "audio_branch.head.weight",
        "audio_branch.tscam_conv.bias",
        "audio_transform.sequential.3.weight",
        "audio_branch.layers.0.blocks.1.attn_mask",
    ):
        assert SPEC.unused_reason(key), key
    assert SPEC.unused_reason("audio_branch.norm.weight") is None
    with pytest.raises(UnknownKeyError):
        SPEC.map_tensor("audio_branch.nonsense.weight", torch.zeros(1))


def test_full_size_manifest_maps_onto_meta_model(manifest_dir):
    with gzip.open(manifest_dir / "codi_full_state_dict.json.gz") as f:
        entries = json.load(f)["state_dict"]["tensors"]
    official = {
        e["key"]: torch.empty(e["shape"], dtype=getattr(torch, e["dtype"]), device="meta")
        for e in entries
        if e["key"].startswith(PREFIX)
    }
    with torch.device("meta"):
        model = SPEC.build(OfficialConfig.full())
    expected = model.state_dict()
    ours = _convert(official)
    assert set(ours) == set(expected)
    for key, value in ours.items():
        assert value.shape == expected[key].shape, key
    kept = sum(
        math.prod(e["shape"])
        for e in entries
        if e["key"].startswith(PREFIX) and e["kind"] == "parameter"
        and not SPEC.unused_reason(e["key"][len(PREFIX):])
    )
    assert sum(p.numel() for p in model.parameters()) == kept


def test_save_and_reload_round_trip(tiny_clap, clap_fixture, tmp_path):
    tiny_clap.save_pretrained(tmp_path)
    reloaded = CodiClapAudioModel.from_pretrained(tmp_path).eval()
    log_mel = clap_fixture["logmel"]
    assert reloaded.state_dict().keys() == tiny_clap.state_dict().keys()
    with torch.no_grad():
        # not bitwise: mmap-loaded weights are unaligned, so kernels take other SIMD paths
        diff = reloaded.embed_log_mel(log_mel) - tiny_clap.embed_log_mel(log_mel)
    assert diff.abs().max() <= 1e-6
