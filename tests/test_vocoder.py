"""AudioLDM's HiFi-GAN as transformers SpeechT5HifiGan."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from codi.convert.core import Converter
from codi.convert.maps.audio import SPECS
from codi.convert.spec import UnknownKeyError
from codi.models.official_config import OfficialConfig
from codi.models.vocoder import build_vocoder, mel_to_waveform, vocode
from codi.parity.checks import CHECKS
from codi.parity.fixtures import FixtureContext, load_fixture_tensors, read_index
from codi.store.weights import load_component

SPEC = next(spec for spec in SPECS if spec.name == "vocoder")


def _tiny_width_official() -> OfficialConfig:
    official = OfficialConfig.full()
    official.runtime_overrides["HIFIGAN_16K_64"]["upsample_initial_channel"] = 32
    return official


def test_output_length_and_layouts():
    vocoder = build_vocoder(_tiny_width_official()).eval()
    mel = torch.randn(2, 64, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wave = vocode(vocoder, mel)
        same = mel_to_waveform(vocoder, mel.transpose(1, 2)[:, None])
    assert wave.shape == (2, 1, 7 * 160 + 32)
    assert torch.equal(wave, same)
    assert wave.abs().max() <= 1.0


def test_full_size_matches_manifest(manifest_dir):
    with torch.device("meta"):
        ours = build_vocoder(OfficialConfig.full())
    assert sum(p.numel() for p in ours.parameters()) == 55_264_897
    expected = ours.state_dict()
    manifest = json.load(gzip.open(manifest_dir / "codi_full_state_dict.json.gz"))
    mapped = {}
    for item in manifest["state_dict"]["tensors"]:
        if item["key"].startswith("audioldm.vocoder."):
            local = item["key"][len("audioldm.vocoder."):]
            for key, tensor in SPEC.map_tensor(local, torch.empty(item["shape"], device="meta")):
                mapped[key] = tuple(tensor.shape)
    assert set(expected) - set(mapped) == {"mean", "scale"}
    assert all(mapped[k] == tuple(expected[k].shape) for k in mapped)


def test_unknown_key_raises():
    with pytest.raises(UnknownKeyError):
        SPEC.map_tensor("ups.0.weight_g", torch.empty(1))


def test_parity(tmp_path, fixture_dir, tiny_official, tiny_weights):
    converter = Converter(tiny_official, tmp_path, specs=[SPEC])
    prefix = "audioldm.vocoder."
    converter.feed("tiny", {k: v for k, v in tiny_weights.items() if k.startswith(prefix)})
    report = converter.finish()
    assert not report.errors and set(report.filled["vocoder"]) == {"mean", "scale"}
    model = load_component(tmp_path, "vocoder", torch.float32)
    entry = read_index(fixture_dir)["hifigan_vocoder"]
    context = FixtureContext(
        "hifigan_vocoder", load_fixture_tensors(fixture_dir, entry), entry, tiny_official,
        fixture_dir, lambda name: model,
    )
    with torch.no_grad():
        [comparison] = CHECKS["hifigan_vocoder"](context)
    assert comparison.max_abs_error() <= comparison.atol
