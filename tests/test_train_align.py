"""Stage 1 bridge alignment (codi.train.align): losses, exact preprocessing, stages, resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from codi.models.registry import model_component
from codi.nano import world
from codi.nano.config import CONTEXT_DIM, nano_official
from codi.pipeline.preprocess import clip_pixels
from codi.train import align
from codi.train.attributes import (
    ATTRIBUTE_VALUES,
    attribute_head,
    attribute_labels,
    visible_labels,
)

TINY_PLANS = {
    align.IMAGE_STAGE: align.StagePlan(steps=2, batch_size=4, lr=1e-3, pool=8),
    align.VIDEO_STAGE: align.StagePlan(steps=2, batch_size=4, lr=1e-3, pool=4),
    align.AUDIO_STAGE: align.StagePlan(steps=2, batch_size=4, lr=1e-3, pool=4),
}


@pytest.fixture(scope="module")
def tokenizer():
    return align.load_clip_tokenizer(align.VOCAB_DIR)


@pytest.fixture(scope="module")
def scenes() -> world.WorldBatch:
    return world.sample_batch(np.random.default_rng(3), 4)


def _encoders(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    return {name: model_component(name).build(nano_official()).eval()
            for name in ("clip_text", "clip_vision", "clap")}


def test_contrastive_loss_counts_every_matching_pair_as_positive():
    a = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    scale = torch.tensor(20.0)
    swapped = a[[1, 0, 2, 3, 4, 5]]  # rows 0 and 1 share a label: still perfectly matched
    shuffled = a[[2, 3, 4, 5, 0, 1]]
    aligned = align.contrastive_loss(a, a, labels, scale)
    assert torch.allclose(aligned, align.contrastive_loss(a, swapped, labels, scale))
    assert aligned < align.contrastive_loss(a, shuffled, labels, scale)
    assert align.retrieval_accuracy(a, swapped, labels) == (1.0, 1.0)
    assert align.retrieval_accuracy(a, shuffled, labels)[0] < 0.5


def test_keys_hold_only_what_each_modality_carries(scenes):
    scene = scenes.scenes[0]
    obj = scene.objects[0]
    assert (obj.colour, obj.shape) in align.audio_key(scene)
    assert (obj.colour, obj.shape, obj.position) in align.image_key(scene)
    assert (obj.colour, obj.shape, obj.position, obj.motion) in align.video_key(scene)


def test_cached_pixels_are_exactly_what_the_pipeline_feeds_clip(scenes):
    for conditions in (align.image_conditions(scenes.images[:2]),
                       align.video_conditions(scenes.videos[:1])):
        pixels = clip_pixels(conditions)
        assert torch.equal(align.uint8_to_pixels(align.pixels_to_uint8(pixels)), pixels)


def test_training_inputs_give_the_pipeline_tokens(scenes, tokenizer):
    encoders = _encoders()
    tokens = align.encode_world(encoders, tokenizer, scenes)
    n = len(scenes.captions)
    for modality, token in tokens.items():
        assert token.shape == (n, 1, CONTEXT_DIM), modality
        assert torch.allclose(token.norm(dim=-1), torch.ones(n, 1), atol=1e-5), modality
    with torch.no_grad():
        image = encoders["clip_vision"].encode(
            align.uint8_to_pixels(align.preprocess("image", scenes)))
        video = encoders["clip_vision"].encode(
            align.uint8_to_pixels(align.preprocess("video", scenes)))
        audio = encoders["clap"].embed_log_mel(align.preprocess("audio", scenes))
        text = align.text_tokens(encoders["clip_text"], align.tokenize(tokenizer, scenes.captions))
    assert torch.allclose(image, tokens["image"], atol=1e-6)
    assert torch.allclose(video, tokens["video"], atol=1e-6)
    assert torch.allclose(audio, tokens["audio"], atol=1e-6)
    assert torch.allclose(text, tokens["text"][:, 0], atol=1e-6)


def _fit(loss_fn, modules, batch, steps: int = 40) -> list[float]:
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-3)
    losses = []
    for step in range(steps):
        loss, _ = loss_fn(modules, batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_image_stage_loss_decreases_on_a_fixed_batch(tokenizer):
    encoders = _encoders()
    rng = np.random.default_rng(0)
    pools = align.Pools({"image": 8, "video": 4}, tokenizer)
    batch = {"image": align._take(pools["image"], rng, 8),
             "video": align._take(pools["video"], rng, 4)}
    modules = {"clip_text": encoders["clip_text"].train(),
               "clip_vision": encoders["clip_vision"].train(), "logit_scale": align.LogitScale(),
               align.ATTRIBUTE_HEAD: attribute_head(CONTEXT_DIM)}
    assert "attributes" in align.image_stage_loss(modules, batch, 0)[1]
    losses = _fit(align.image_stage_loss, modules, batch)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_visible_labels_keep_only_what_a_view_shows():
    labels = attribute_labels(["a blue square on the right bouncing"])
    assert (labels[0, :4] >= 0).all() and (labels[0, 4:] == -100).all()  # one object
    image = visible_labels(labels, align.VISIBLE["image"])
    audio = visible_labels(labels, align.VISIBLE["audio"])
    assert image[0, :4].tolist() == [*labels[0, :3].tolist(), -100]
    assert audio[0, :4].tolist() == [*labels[0, :2].tolist(), -100, -100]
    assert torch.equal(visible_labels(labels, align.VISIBLE["video"]), labels)


def test_the_attribute_head_reads_motion_from_text_but_not_from_images():
    torch.manual_seed(0)
    labels = attribute_labels(["a blue square on the right bouncing"] * 3)
    token = torch.nn.functional.normalize(torch.randn(3, CONTEXT_DIM), dim=-1)
    head = attribute_head(CONTEXT_DIM)
    other = copy.deepcopy(head)
    motion = slice(sum(len(v) for v in ATTRIBUTE_VALUES[:3]), sum(len(v) for v in ATTRIBUTE_VALUES))
    with torch.no_grad():
        other.weight[motion] += 5 * torch.randn_like(other.weight[motion])

    def loss(view, h):
        return float(align.tokens_attribute_loss(h, {view: token}, {view: labels}))

    assert loss("image", head) == pytest.approx(loss("image", other), abs=1e-6)
    assert loss("text", head) != pytest.approx(loss("text", other), abs=1e-3)


def test_audio_stage_loss_decreases_against_frozen_text(tokenizer):
    encoders = _encoders()
    pools = align.Pools({"audio": 8}, tokenizer)
    batch = align._against_text(pools, "audio", encoders["clip_text"])(
        np.random.default_rng(0), 8)
    modules = {"clap": encoders["clap"].train(), "logit_scale": align.LogitScale()}
    losses = _fit(align.audio_stage_loss, modules, batch)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_video_stage_trains_only_the_temporal_layers(tokenizer, tmp_path):
    encoders = _encoders()
    before = {k: v.clone() for k, v in encoders["clip_vision"].state_dict().items()}
    text_before = {k: v.clone() for k, v in encoders["clip_text"].state_dict().items()}
    pools = align.Pools({"video": 4}, tokenizer)
    out = align.align_video(encoders, pools, TINY_PLANS[align.VIDEO_STAGE], tmp_path)
    after = out["clip_vision"].state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".temporal_self_attn." in k for k in changed)
    assert all(torch.equal(v, out["clip_text"].state_dict()[k]) for k, v in text_before.items())
    assert all(p.requires_grad for p in out["clip_vision"].parameters())


def test_alignment_runs_every_stage_and_loads_when_finished(tmp_path):
    encoders = align.train_alignment(nano_official(), tmp_path, plans=TINY_PLANS, eval_size=8)
    assert set(encoders) == {"clip_text", "clip_vision", "clap"}
    report = json.loads((tmp_path / "align_eval.json").read_text())
    assert set(report["retrieval"]) == {f"{a}_{b}" for v in ("image", "video", "audio")
                                        for a, b in ((v, "to_text"), ("text", f"to_{v}"))}
    assert all(0.0 <= acc <= 1.0 for acc in report["retrieval"].values())
    assert set(report["caption_attributes"]) == {"colour", "shape", "position", "motion"}
    logs = {name: (tmp_path / name / "log.jsonl").read_text() for name in TINY_PLANS}
    again = align.train_alignment(nano_official(), tmp_path, plans=TINY_PLANS, eval_size=8)
    assert logs == {name: (tmp_path / name / "log.jsonl").read_text() for name in TINY_PLANS}
    for name, module in again.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, encoders[name].state_dict()[key]), (name, key)


def test_a_finished_image_stage_trained_without_the_head_still_loads(tmp_path, monkeypatch):
    plan = TINY_PLANS[align.IMAGE_STAGE]
    pools = align.Pools({"image": 8, "video": 4}, align.load_clip_tokenizer(align.VOCAB_DIR))
    monkeypatch.setattr(align, "ATTRIBUTE_WEIGHTS", dict.fromkeys(align.ATTRIBUTE_WEIGHTS, 0.0))
    trained = align.align_image(_encoders(), pools, plan, tmp_path)
    final = tmp_path / align.IMAGE_STAGE / "final"
    assert not (final / f"{align.ATTRIBUTE_HEAD}.safetensors").exists()
    monkeypatch.undo()
    loaded = align.align_image(_encoders(seed=1), pools, plan, tmp_path)
    for key, value in loaded["clip_text"].state_dict().items():
        assert torch.equal(value, trained["clip_text"].state_dict()[key]), key


def test_image_stage_resumes_to_the_uninterrupted_result(tokenizer, tmp_path, monkeypatch):
    plan = align.StagePlan(steps=4, batch_size=4, lr=1e-3, pool=8)

    def run(run_dir):
        pools = align.Pools({"image": 8, "video": 4}, tokenizer)
        return align.align_image(_encoders(), pools, plan, run_dir)

    straight = run(tmp_path / "straight")
    real_loss = align.image_stage_loss

    def failing_loss(modules, batch, step):
        if step == 2:
            raise KeyboardInterrupt
        return real_loss(modules, batch, step)

    monkeypatch.setattr(align, "image_stage_loss", failing_loss)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    monkeypatch.setattr(align, "image_stage_loss", real_loss)
    assert (tmp_path / "resumed" / align.IMAGE_STAGE / "checkpoint" / "state.pt").exists()
    run(tmp_path / "resumed")
    final = tmp_path / "resumed" / align.IMAGE_STAGE / "final" / "clip_text.safetensors"
    for key, value in load_file(final).items():
        assert torch.allclose(value, straight["clip_text"].state_dict()[key], atol=1e-6), key


def test_one_object_captions_cover_the_world_once():
    captions, objects = align.one_object_captions()
    assert len(set(captions)) == len(captions) == 4 * 3 * 2 * 3
    assert [world.parse_caption(c) for c in captions] == [(o,) for o in objects]


def test_nearest_centroid_accuracy_reads_a_carried_attribute_and_not_a_missing_one():
    _, objects = align.one_object_captions()
    generator = torch.Generator().manual_seed(0)
    colour = {c: torch.randn(CONTEXT_DIM, generator=generator) for c in world.COLOURS}
    noise = 0.3 * torch.randn(len(objects), CONTEXT_DIM, generator=generator)
    tokens = torch.stack([colour[o.colour] for o in objects]) + noise
    assert align.nearest_centroid_accuracy(tokens, [o.colour for o in objects]) == 1.0
    assert align.nearest_centroid_accuracy(tokens, [o.motion for o in objects]) < 0.6


def test_caption_token_readout_reports_every_attribute(tokenizer):
    readout = align.caption_token_readout(_encoders()["clip_text"], tokenizer)
    assert set(readout) == {"colour", "shape", "position", "motion"}
    assert all(0.0 <= value <= 1.0 for value in readout.values())


def test_each_view_attribute_loss_is_scaled_by_its_weight(monkeypatch):
    torch.manual_seed(0)
    labels = attribute_labels(["a blue square on the right bouncing"] * 3)
    tokens = {view: torch.nn.functional.normalize(torch.randn(3, CONTEXT_DIM), dim=-1)
              for view in ("text", "image")}
    head = attribute_head(CONTEXT_DIM)
    both = {view: labels for view in tokens}
    before = float(align.tokens_attribute_loss(head, tokens, both))
    text_alone = float(align.tokens_attribute_loss(head, {"text": tokens["text"]},
                                                   {"text": labels}))  # w · CE_text
    monkeypatch.setitem(align.ATTRIBUTE_WEIGHTS, "text", 3 * align.ATTRIBUTE_WEIGHTS["text"])
    after = float(align.tokens_attribute_loss(head, tokens, both))
    assert after - before == pytest.approx(text_alone, rel=1e-5)  # (3w − w) · CE_text / 2 views
