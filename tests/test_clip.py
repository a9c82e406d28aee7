"""CoDi's CLIP: tokenizer, text/vision towers with temporal layers, pixel preprocessing."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from codi.convert.maps.clip import SPECS
from codi.convert.registry import owner_of
from codi.models.clip import CoDiCLIPVisionModel, tokenize
from codi.models.official_config import OfficialConfig
from codi.parity.checks.clip import check_clip
from codi.parity.fixtures import FixtureContext, load_fixture_tensors, read_index
from codi.pipeline.preprocess import CLIP_MEAN, CLIP_STD, clip_pixels
from codi.store.tokenizers import load_clip_tokenizer

SPEC = {spec.name: spec for spec in SPECS}
FULL_TEMPORAL_PARAMS = 310_030_704  # reference §1.8, incl. the unused pos/framerate embeddings


def _convert(name: str, official: OfficialConfig, weights: dict) -> torch.nn.Module:
    """Our component filled from official-layout weights through its spec (strict load)."""
    spec = SPEC[name]
    state = {}
    for key, tensor in weights.items():
        owner = owner_of(key)
        if owner is None or owner[0].name != name or spec.unused_reason(owner[1]):
            continue
        state.update(spec.map_tensor(owner[1], tensor))
    module = spec.build(official).eval()
    module.load_state_dict(state, strict=True)
    return module


@pytest.fixture(scope="module")
def tiny_clip(tiny_official, tiny_weights):
    return {name: _convert(name, tiny_official, tiny_weights) for name in SPEC}


def test_tokenizer_matches_official_ids(fixture_dir, vocab_dir):
    entry = read_index(fixture_dir)["clip"]
    expected = load_fixture_tensors(fixture_dir, entry)["input_ids"]
    ids = tokenize(load_clip_tokenizer(vocab_dir), entry["extra"]["prompts"])
    assert torch.equal(ids, expected)


def test_parity_with_official_fixture(fixture_dir, vocab_dir, tiny_official, tiny_clip):
    entry = read_index(fixture_dir)["clip"]
    ctx = FixtureContext(
        "clip", load_fixture_tensors(fixture_dir, entry), entry, tiny_official, vocab_dir,
        tiny_clip.__getitem__,
    )
    with torch.no_grad():
        comparisons = check_clip(ctx)
    assert {c.name for c in comparisons} >= {"video_embed", "image_embed", "text_pooled_normed"}
    for c in comparisons:
        assert c.max_abs_error() <= c.atol, (c.name, c.max_abs_error())


def test_temporal_layers_act_only_on_video(tiny_clip):
    vision = tiny_clip["clip_vision"]
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(2, 3, 224, 224, generator=gen)
    video = torch.randn(1, 3, 3, 224, 224, generator=gen)
    with torch.no_grad():
        before = vision.encode(image), vision.encode(video)
        for layer in vision.vision_model.encoder.layers:
            layer.temporal_self_attn.temporal_attn.to_out.weight.mul_(2)
        after = vision.encode(image), vision.encode(video)
        for layer in vision.vision_model.encoder.layers:
            layer.temporal_self_attn.temporal_attn.to_out.weight.div_(2)
    assert before[0].shape == (2, 1, vision.config.projection_dim)
    assert before[1].shape == (1, 1, vision.config.projection_dim)
    assert torch.equal(before[0], after[0])
    assert (before[1] - after[1]).abs().max() > 1e-3
    assert torch.allclose(before[1].norm(dim=-1), torch.ones(1, 1))


def test_save_and_reload_roundtrip(tmp_path, tiny_clip):
    vision = tiny_clip["clip_vision"]
    vision.save_pretrained(tmp_path)
    reloaded = CoDiCLIPVisionModel.from_pretrained(tmp_path).eval()
    video = torch.randn(1, 2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(vision.encode(video), reloaded.encode(video))


def test_full_size_shapes_and_counts_on_meta(manifest_dir):
    manifest = json.loads(gzip.open(manifest_dir / "codi_full_state_dict.json.gz").read())
    official = {e["key"]: e["shape"] for e in manifest["state_dict"]["tensors"]
                if e["key"].startswith("clip.model.")}
    full = OfficialConfig.full()
    expected = {}
    for name, spec in SPEC.items():
        with torch.device("meta"):
            expected[name] = spec.build(full).state_dict()
    mapped: dict[str, set[str]] = {name: set() for name in SPEC}
    dropped_temporal = 0
    for key, shape in official.items():
        spec, local = owner_of(key)
        assert spec.name in SPEC, key
        if spec.unused_reason(local):
            dropped_temporal += torch.Size(shape).numel() if "temporal" in key else 0
            continue
        for ours, tensor in spec.map_tensor(local, torch.empty(shape, device="meta")):
            assert tuple(expected[spec.name][ours].shape) == tuple(tensor.shape), key
            mapped[spec.name].add(ours)
    for name in SPEC:
        assert mapped[name] == set(expected[name]), name
    with torch.device("meta"):
        vision = SPEC["clip_vision"].build(full)
    temporal = sum(p.numel() for n, p in vision.named_parameters() if "temporal" in n)
    assert temporal + dropped_temporal == FULL_TEMPORAL_PARAMS
    assert sum(p.numel() for p in vision.parameters()) - temporal == 303_966_208


def test_preprocess_truncates_to_uint8_and_normalises():
    level = 100.9  # (x+1)/2·255: truncation gives 100, rounding would give 101
    x = torch.full((1, 3, 224, 224), level / 255 * 2 - 1)
    pixels = clip_pixels(x)
    expected = torch.tensor([(100 / 255 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    assert pixels.shape == (1, 3, 224, 224)
    assert torch.allclose(pixels[0, :, 0, 0], expected, atol=1e-6)
    video = clip_pixels(torch.rand(2, 3, 3, 40, 60, generator=torch.Generator().manual_seed(0)))
    assert video.shape == (2, 3, 3, 224, 224)
