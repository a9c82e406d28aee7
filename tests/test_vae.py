"""SD and AudioLDM autoencoders (diffusers AutoencoderKL) and the AudioLDM mel front end."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from codi.convert.core import Converter
from codi.convert.maps import audio, vae_image
from codi.convert.spec import ComponentSpec, UnknownKeyError
from codi.models import mel
from codi.models.official_config import OfficialConfig
from codi.models.vae import decode_audio_latents, decode_image_latents
from codi.parity.checks import CHECKS
from codi.parity.fixtures import FixtureContext, load_fixture_tensors, read_index
from codi.store.weights import load_component

SPECS = {spec.name: spec for spec in vae_image.SPECS + audio.SPECS}


def _owned(spec: ComponentSpec, key: str) -> str | None:
    """The key without its prefix when `spec` owns it (the vocoder prefix is the longer one)."""
    if spec.name == "vae_audio" and key.startswith("audioldm.vocoder."):
        return None
    prefix = next((p for p in spec.prefixes if key.startswith(p)), None)
    return key[len(prefix):] if prefix else None


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_official, tiny_weights):
    """The tiny VAEs and vocoder, converted by the real converter and written to disk."""
    dst = tmp_path_factory.mktemp("converted")
    converter = Converter(tiny_official, dst, specs=SPECS.values())
    ours = {k: v for k, v in tiny_weights.items() if k.startswith(("autokl.", "audioldm."))}
    converter.feed("tiny", ours)
    report = converter.finish()
    assert not report.errors and not report.unknown
    return dst, report


@pytest.fixture(scope="module")
def models(converted):
    folder, _ = converted
    return {name: load_component(folder, name, torch.float32) for name in SPECS}


def _context(fixture_dir, tiny_official, models, name: str) -> FixtureContext:
    entry = read_index(fixture_dir)[name]
    tensors = load_fixture_tensors(fixture_dir, entry)
    return FixtureContext(name, tensors, entry, tiny_official, fixture_dir, models.__getitem__)


@pytest.mark.parametrize("name", ["autokl", "audioldm_vae"])
def test_parity(name, fixture_dir, tiny_official, models):
    with torch.no_grad():
        comparisons = CHECKS[name](_context(fixture_dir, tiny_official, models, name))
    assert len(comparisons) >= 5
    for c in comparisons:
        assert c.max_abs_error() <= c.atol, (c.name, c.max_abs_error())


def test_conversion_report(converted):
    _, report = converted
    assert report.written["vae_image"] == 248 and report.written["vae_audio"] == 204
    stft = {k for k in report.unused if k.startswith("audioldm.fn_STFT.")}
    assert stft == {"audioldm.fn_STFT.mel_basis"}  # the two bases are not in the tiny file
    assert "recomputed" in report.unused["audioldm.fn_STFT.mel_basis"]


def test_scaling_factor_round_trips(models):
    assert models["vae_image"].config.scaling_factor == pytest.approx(0.18215)
    assert models["vae_audio"].config.scaling_factor == pytest.approx(0.9228)


def test_full_manifest_shapes(manifest_dir):
    """Every full-size official key maps onto our meta-built module, shape for shape."""
    manifest = json.load(gzip.open(manifest_dir / "codi_full_state_dict.json.gz"))
    official_keys = manifest["state_dict"]["tensors"]
    for spec in (SPECS["vae_image"], SPECS["vae_audio"]):
        with torch.device("meta"):
            expected = spec.build(OfficialConfig.full()).state_dict()
        mapped = {}
        for item in official_keys:
            local = _owned(spec, item["key"])
            if local is None or spec.unused_reason(local):
                continue
            for ours, tensor in spec.map_tensor(local, torch.empty(item["shape"], device="meta")):
                assert ours not in mapped
                mapped[ours] = tuple(tensor.shape)
        assert mapped == {k: tuple(v.shape) for k, v in expected.items()}, spec.name


def test_unknown_key_raises():
    with pytest.raises(UnknownKeyError):
        SPECS["vae_image"].map_tensor("encoder.mid.attn_2.q.weight", torch.empty(1))
    with pytest.raises(UnknownKeyError):
        SPECS["vae_image"].map_tensor("decoder.up.4.upsample.conv.weight", torch.empty(1))


def test_video_latents_decode_frame_by_frame(models):
    vae = models["vae_image"]
    z = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        video = decode_image_latents(vae, z)
        frames = [decode_image_latents(vae, z[:, :, f]) for f in range(2)]
    assert video.shape == (1, 3, 2, 64, 64)
    # Batched and single-frame convolutions may pick different kernels: float32 rounding only.
    for f, frame in enumerate(frames):
        torch.testing.assert_close(video[:, :, f], frame, atol=1e-4, rtol=0)


def test_audio_latent_guard(models):
    vae = models["vae_audio"]
    z = torch.randn(1, 8, 8, 16, generator=torch.Generator().manual_seed(1))
    big, moderate = z * (120 / z.abs().max()), z * (90 / z.abs().max())
    with torch.no_grad():
        clipped = decode_image_latents(vae, big.clamp(-10, 10))
        torch.testing.assert_close(decode_audio_latents(vae, big), clipped)
        unguarded = decode_image_latents(vae, moderate)
        assert torch.equal(decode_audio_latents(vae, moderate), unguarded)
        assert not torch.allclose(unguarded, decode_image_latents(vae, moderate.clamp(-10, 10)))


def test_stft_matches_tacotron_conv_bases():
    """torch.stft equals the official conv1d with windowed DFT bases (parity README §1)."""
    n, hop = mel.N_FFT, mel.HOP_LENGTH
    fourier = np.fft.fft(np.eye(n))[: n // 2 + 1]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
    basis = torch.from_numpy(np.concatenate([fourier.real, fourier.imag]) * window).float()[:, None]
    wav = torch.rand(2, 4000, generator=torch.Generator().manual_seed(2)) - 0.5
    padded = torch.nn.functional.pad(wav[:, None], (n // 2, n // 2), mode="reflect")
    out = torch.nn.functional.conv1d(padded, basis, stride=hop)
    reference = torch.sqrt(out[:, : n // 2 + 1] ** 2 + out[:, n // 2 + 1 :] ** 2)
    ours = mel.stft_magnitude(wav)
    assert ours.shape == reference.shape == (2, 513, 4000 // hop + 1)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_fbank_normalisation_and_length():
    wav = torch.randn(2, 1000, generator=torch.Generator().manual_seed(3)) + 3.0
    norm = mel.normalize_waveform(wav, 1600)
    assert norm.shape == (2, 1600) and torch.all(norm[:, 1000:] == 0)
    torch.testing.assert_close(norm.abs().amax(-1), torch.full((2,), 0.5))
    assert mel.wav_to_fbank(wav, 10).shape == (2, 1, 10, 64)
    assert mel.fbank_frames(1.25) == 128 and mel.fbank_frames(2.0) == 204
