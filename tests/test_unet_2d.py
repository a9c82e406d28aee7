"""The 2-D UNets, their temporal layers and connectors: structure, conversion and parity."""

from __future__ import annotations

import pytest
import torch

from codi.convert.maps.unet import SPECS
from codi.convert.registry import owner_of
from codi.models.official_config import OfficialConfig
from codi.models.temporal import (
    ChanLayerNorm,
    FrameAxisLayerNorm,
    FrameShift,
    SpatioTemporalAttention,
    TemporalFeedForward,
)
from codi.parity.checks.unet import CHECKS
from codi.parity.fixtures import FixtureContext, load_fixture_tensors, read_index

SPEC = {spec.name: spec for spec in SPECS}


def _converted(tiny_official, tiny_weights, name):
    spec = SPEC[name]
    model = spec.build(tiny_official)
    state = {}
    for key, tensor in tiny_weights.items():
        owner = owner_of(key, SPECS)
        if owner and owner[0] is spec:
            state.update(spec.map_tensor(owner[1], tensor))
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def context_of(fixture_dir, tiny_official, tiny_weights):
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = _converted(tiny_official, tiny_weights, name)
        return cache[name]

    index = read_index(fixture_dir)

    def make(fixture):
        entry = index[fixture]
        tensors = load_fixture_tensors(fixture_dir, entry)
        return FixtureContext(fixture, tensors, entry, tiny_official, fixture_dir, load)

    return make


@pytest.mark.parametrize("fixture", ["unet_image", "unet_video", "unet_audio", "mix_conditions"])
def test_parity(context_of, fixture):
    comparisons = CHECKS[fixture](context_of(fixture))
    assert comparisons
    for comparison in comparisons:
        assert comparison.max_abs_error() <= comparison.atol, comparison.name


def test_frame_axis_layernorm_normalises_over_frames():
    x = torch.randn(3, 5, 7)  # [N, T, C]
    y = FrameAxisLayerNorm(7)(x)
    assert torch.allclose(y.mean(dim=1), torch.zeros(3, 7), atol=1e-5)
    assert not torch.allclose(y.mean(dim=2), torch.zeros(3, 5), atol=1e-3)


def test_chan_layernorm_normalises_channels():
    y = ChanLayerNorm(6)(torch.randn(2, 3, 6))  # [N, T, C]
    assert torch.allclose(y.mean(dim=-1), torch.zeros(2, 3), atol=1e-5)


def test_feed_forward_on_frame_sequences_equals_the_official_conv3d_layout():
    torch.manual_seed(0)
    ff = TemporalFeedForward(16)
    torch.nn.init.normal_(ff.norm.weight)
    x = torch.randn(2, 16, 5, 3, 3)  # [B, C, T, H, W], as the official code runs it
    value, gate = ff.proj_in(x).chunk(2, dim=1)
    h = value * torch.nn.functional.gelu(gate)
    kept, shifted = h.chunk(2, dim=1)
    shifted = torch.cat((torch.zeros_like(shifted[:, :, :1]), shifted[:, :, :-1]), dim=2)
    h = torch.cat((kept, shifted), dim=1)
    var, mean = torch.var_mean(h, dim=1, unbiased=False, keepdim=True)
    h = (h - mean) * var.clamp(min=1e-5).rsqrt() * ff.norm.weight.view(-1, 1, 1, 1)
    expected = ff.proj_out(h)
    seq = x.permute(0, 3, 4, 2, 1).reshape(-1, 5, 16)  # [B·H·W, T, C]
    trained = ff(seq)  # autograd on: the differentiable path
    assert trained.requires_grad
    with torch.no_grad():  # inference: the buffer written in place
        inferred = ff(seq)
    for got in (trained, inferred):
        got = got.detach().view(2, 3, 3, 5, 16).permute(0, 4, 3, 1, 2)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frames", [1, 2, 7])
def test_feed_forward_inference_path_equals_the_differentiable_one_in_bf16(frames):
    torch.manual_seed(1)
    ff = TemporalFeedForward(24).to(torch.bfloat16)
    seq = torch.randn(6, frames, 24, dtype=torch.bfloat16)
    trained = ff(seq)
    with torch.no_grad():
        inferred = ff(seq)
    torch.testing.assert_close(inferred.float(), trained.detach().float(), rtol=0.02, atol=0.02)


def test_frame_shift_delays_chunk_k_by_k_frames():
    shift = FrameShift(64)
    torch.nn.init.normal_(shift.conv.weight)
    h = shift(torch.randn(1, 64, 9, 4, 4))
    for k in range(8):
        chunk = h[:, 8 * k : 8 * (k + 1)]
        assert torch.all(chunk[:, :, :k] == 0)
        assert torch.all(chunk[:, :, k:].abs().sum(dim=(0, 1, 3, 4)) > 0)


def test_temporal_is_identity_on_images_only():
    layer = SpatioTemporalAttention(64).eval()
    image = torch.randn(2, 64, 4, 4)
    assert layer(image) is image
    video = torch.randn(1, 64, 3, 4, 4)
    assert layer(video).shape == video.shape


def test_image_forward_skips_temporal(tiny_official):
    unet = SPEC["unet_image"].build(tiny_official).eval()
    calls = []
    for block in unet.input_blocks:
        if block.temporal is not None:
            block.temporal.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        unet(torch.randn(1, 4, 8, 8), torch.tensor([10]), torch.randn(1, 1, 32))
        assert not calls
        unet(torch.randn(1, 4, 2, 8, 8), torch.tensor([10]), torch.randn(1, 1, 32))
    assert calls


def test_audio_unet_has_no_temporal(tiny_official):
    unet = SPEC["unet_audio"].build(tiny_official)
    assert not any("temporal" in key for key in unet.state_dict())


@pytest.mark.parametrize("name", sorted(SPEC))
def test_full_size_keys_and_shapes_match_manifest(manifest_dir, name):
    import gzip
    import json

    entries = json.loads(gzip.open(manifest_dir / "codi_full_state_dict.json.gz").read())
    entries = entries["state_dict"]["tensors"]
    spec = SPEC[name]
    with torch.device("meta"):
        ours = spec.build(OfficialConfig.full()).state_dict()
    mapped = {}
    for entry in entries:
        owner = owner_of(entry["key"], SPECS)
        if owner and owner[0] is spec:
            tensor = torch.empty(entry["shape"], device="meta")
            for key, value in spec.map_tensor(owner[1], tensor):
                mapped[key] = tuple(value.shape)
    assert mapped.keys() == ours.keys()
    assert all(mapped[k] == tuple(v.shape) for k, v in ours.items())


def test_save_load_round_trip(tmp_path, tiny_official):
    from codi.models.connectors import CoDiConnectors2D

    connectors = SPEC["unet_audio_connectors"].build(tiny_official)
    connectors.save_pretrained(tmp_path)
    again = CoDiConnectors2D.from_pretrained(tmp_path)
    for key, value in connectors.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
