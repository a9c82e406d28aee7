"""Stage-1 autoencoder training (codi.train.vae / vocoder / optimus): losses, shapes, resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from codi.models.optimus_decoding import detokenize, strip_special_words
from codi.models.registry import model_component
from codi.models.vocoder import mel_to_waveform
from codi.nano.config import MEL_FRAMES, TEXT_LATENT, nano_official
from codi.train import optimus, vae, vocoder
from codi.train.autoencoders import latent_scale_factors
from codi.train.loop import TrainSpec, run_stage


@pytest.fixture(scope="module")
def official():
    """Nano with narrower VAEs and vocoder so the tests stay fast (same structure)."""
    config = nano_official()
    config.codi["autokl_cfg"]["args"]["ddconfig"].update(ch_mult=[1, 1, 1, 1])
    config.codi["audioldm_cfg"]["args"]["ddconfig"].update(ch_mult=[1, 1, 1])
    config.runtime_overrides["HIFIGAN_16K_64"]["upsample_initial_channel"] = 32
    return config


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on shared busy cores, a second one mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def small_eval_sample(monkeypatch):
    """Scale factors and quality measured on 4 items instead of 64."""
    monkeypatch.setattr(vae, "EVAL_SIZE", 4)
    monkeypatch.setattr(optimus, "EVAL_SIZE", 4)


def _fixed_batch_losses(modules, loss_fn, batch, steps: int = 30, lr: float = 2e-3):
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr)
    losses = []
    for step in range(steps):
        loss, logs = loss_fn(modules, batch, step)
        assert all(math.isfinite(v) for v in logs.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _build(name, official):
    torch.manual_seed(0)
    return model_component(name).build(official)


@pytest.mark.parametrize("stage", ["vae_image", "vae_audio", "vocoder", "optimus"])
def test_loss_decreases_on_a_fixed_batch(stage, official):
    """30 steps (Optimus: 60, its word dropout makes the loss noisy) on one (cropped) batch: the
    stage's loss must fall by a fifth."""
    rng = np.random.default_rng(0)
    steps = 30
    if stage == "vae_image":
        modules = {stage: vae.Autoencoding(_build(stage, official))}
        loss_fn, batch = vae.image_loss, vae._image_batch(rng, 2)[..., :32, :32]
    elif stage == "vae_audio":
        modules = {stage: vae.Autoencoding(_build(stage, official))}
        loss_fn, batch = vae.audio_loss, vae._audio_batch(rng, 1)[..., :32, :]
    elif stage == "vocoder":
        torch.manual_seed(0)
        modules = {stage: vocoder.fresh_vocoder(official)}
        window = vocoder._vocoder_batch(rng, 1)
        loss_fn, batch = vocoder.vocoder_loss, {"mel": window["mel"][:, :16],
                                                "wave": window["wave"][:, :16 * 160]}
    else:
        torch.manual_seed(0)
        encoder, decoder = optimus.fresh_optimus(official)
        modules = {optimus.ENCODER: encoder, optimus.DECODER: decoder,
                   optimus.ATTRIBUTE_HEAD: optimus.attribute_head(TEXT_LATENT)}
        loss_fn, batch = optimus.optimus_loss, optimus._optimus_batch(rng, 4)
        steps = 60
    losses = _fixed_batch_losses(modules, loss_fn, batch, steps)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_image_vae_stage_shapes_scale_factor_and_reload(official, tmp_path):
    trained = vae.train_vae_image(official, tmp_path, steps=2)[vae.IMAGE_STAGE]
    factor = trained.config.scaling_factor
    assert math.isfinite(factor) and factor > 0
    assert vae.load_scale_factor(tmp_path, vae.IMAGE_STAGE) == pytest.approx(factor)
    x = vae.pixels_to_tensor(vae.world_frames(np.random.default_rng(1), 2))
    with torch.no_grad():
        z = trained.encode(x).latent_dist.mode()
        assert z.shape == (2, 4, 8, 8)
        assert trained.decode(z).sample.shape == x.shape
    reloaded = vae.train_vae_image(official, tmp_path, steps=2)[vae.IMAGE_STAGE]
    for ours, theirs in zip(trained.parameters(), reloaded.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert latent_scale_factors(tmp_path) == {"image": pytest.approx(factor)}


def test_audio_vae_stage_latent_shape(official, tmp_path):
    trained = vae.train_vae_audio(official, tmp_path, steps=1)[vae.AUDIO_STAGE]
    x = vae.world_fbank(vae.world_sounds(np.random.default_rng(1), 1))
    assert x.shape == (1, 1, MEL_FRAMES, 64)
    with torch.no_grad():
        assert trained.encode(x).latent_dist.mode().shape == (1, 8, MEL_FRAMES // 4, 16)
    assert math.isfinite(trained.config.scaling_factor)


def test_centring_zeroes_the_latent_channel_means_and_keeps_decoding(official):
    model = _build("vae_audio", official).eval()
    with torch.no_grad():  # a random VAE's latent is off-centre; make it clearly so
        model.quant_conv.bias[:8] += torch.linspace(-2, 2, 8)
    x = vae.world_fbank(vae.world_sounds(np.random.default_rng(4), 2))
    with torch.no_grad():
        before_z = model.encode(x).latent_dist.mean
        before = model.decode(before_z).sample
        shift = vae.centre_latents_(model, x)
        after_z = model.encode(x).latent_dist.mean
        after = model.decode(after_z).sample
    assert float(before_z.mean(dim=(0, 2, 3)).abs().max()) > 1.0
    assert float(after_z.mean(dim=(0, 2, 3)).abs().max()) < 1e-4
    torch.testing.assert_close(after_z, before_z - shift[None, :, None, None], atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_audio_vae_stage_centres_its_latent(official, tmp_path):
    trained = vae.train_vae_audio(official, tmp_path, steps=1)[vae.AUDIO_STAGE]
    with torch.no_grad():
        z = trained.encode(vae.world_fbank(vae.eval_sounds())).latent_dist.mean
    assert float(z.mean(dim=(0, 2, 3)).abs().max()) < 1e-4
    # Reloading the finished stage centres the same weights the same way.
    reloaded = vae.train_vae_audio(official, tmp_path, steps=1)[vae.AUDIO_STAGE]
    torch.testing.assert_close(reloaded.quant_conv.bias, trained.quant_conv.bias)


def test_vocoder_stage_resumes_at_the_checkpointed_step(official, tmp_path):
    spec = TrainSpec(name="vocoder", steps=4, batch_size=1, lr=1e-3, checkpoint_every=2,
                     log_every=1)
    model = _build("vocoder", official)

    def interrupted(modules, batch, step):
        if step == 3:
            raise KeyboardInterrupt
        return vocoder.vocoder_loss(modules, batch, step)

    with pytest.raises(KeyboardInterrupt):
        run_stage(spec, {"vocoder": model}, interrupted, vocoder._vocoder_batch, tmp_path)
    run_stage(spec, {"vocoder": _build("vocoder", official)}, vocoder.vocoder_loss,
              vocoder._vocoder_batch, tmp_path)
    steps = [json.loads(line)["step"] for line in (tmp_path / "vocoder" / "log.jsonl").open()]
    assert steps == [0, 1, 2, 2, 3]
    trained = vocoder.train_vocoder(official, tmp_path)[vocoder.VOCODER_STAGE]
    mel = vae.world_fbank(vae.world_sounds(np.random.default_rng(2), 1))
    with torch.no_grad():
        assert mel_to_waveform(trained, mel).shape[-1] >= MEL_FRAMES * 160


def test_optimus_latent_path_starts_at_unit_gain(official):
    encoder, decoder = optimus.fresh_optimus(official)
    for layer in (encoder.bert.pooler.dense, encoder.linear,
                  decoder.latent_embedding, decoder.latent_memory):
        assert float(layer.weight.std()) == pytest.approx(layer.in_features ** -0.5, rel=0.2)
    # The rest keeps the transformers init (N(0, 0.02)).
    assert float(decoder.transformer.wte.weight.std()) == pytest.approx(0.02, rel=0.2)


def test_word_dropout_keeps_bos_and_drops_a_fraction():
    torch.manual_seed(0)
    ids = torch.full((64, 40), 7)
    dropped = optimus._drop_words(ids)
    pad = optimus.tokenizers()[1].convert_tokens_to_ids("<PAD>")
    assert (dropped[:, 0] == 7).all()
    fraction = float((dropped[:, 1:] == pad).float().mean())
    assert fraction == pytest.approx(optimus.WORD_DROPOUT, abs=0.03)
    assert ((dropped == 7) | (dropped == pad)).all()


def test_optimus_targets_detokenize_to_the_caption():
    captions = optimus.world_captions(np.random.default_rng(3), 8)
    batch = optimus.caption_batch(captions)
    gpt2 = optimus.tokenizers()[1]
    for row, mask, caption in zip(batch["decoder_ids"], batch["decoder_mask"], captions,
                                  strict=True):
        ids = row[mask.bool()].tolist()
        assert strip_special_words(detokenize(gpt2, ids)) == caption


def test_optimus_stage_latents_and_decoding(official, tmp_path):
    trained = optimus.train_optimus(official, tmp_path, steps=2)
    captions = optimus.eval_captions()[:2]
    latents = optimus.encode_captions(trained[optimus.ENCODER], captions)
    assert latents.shape == (2, TEXT_LATENT)
    factor = vae.load_scale_factor(tmp_path, optimus.OPTIMUS_STAGE)
    assert math.isfinite(factor) and factor > 0
    match = optimus.caption_exact_match(trained[optimus.ENCODER], trained[optimus.DECODER],
                                        captions)
    assert 0.0 <= match <= 1.0


def test_first_object_accuracy_scores_each_attribute_of_the_first_clause():
    captions = ["a red circle on the left moving right",
                "a blue square on the right bouncing and a green circle on the left moving left"]
    decoded = ["a yellow circle on the left moving right",  # colour wrong
               "a blue square on the left bouncing and a red circle on the left moving left"]
    accuracy = optimus.first_object_accuracy(decoded, captions)
    assert accuracy == {"colour": 0.5, "shape": 1.0, "position": 0.5, "motion": 1.0}
    assert optimus.first_object_accuracy(["no caption at all"], captions[:1]) == dict.fromkeys(
        optimus.ATTRIBUTES, 0.0)


def test_top_variance_share_tells_a_collapsed_latent_from_an_isotropic_one():
    generator = torch.Generator().manual_seed(0)
    isotropic = torch.randn(4000, TEXT_LATENT, generator=generator)
    assert optimus.top_variance_share(isotropic) == pytest.approx(3 / TEXT_LATENT, rel=0.2)
    collapsed = torch.randn(4000, 2, generator=generator) @ torch.randn(2, TEXT_LATENT,
                                                                      generator=generator)
    collapsed += 1e-3 * torch.randn(4000, TEXT_LATENT, generator=generator)
    assert optimus.top_variance_share(collapsed) > 0.999


def test_optimus_quality_reports_attributes_and_collapse(official, tmp_path):
    trained = optimus.train_optimus(official, tmp_path, steps=2)
    quality = optimus.caption_quality(trained[optimus.ENCODER], trained[optimus.DECODER],
                                      optimus.eval_captions()[:8])
    assert set(quality) == {"exact_match", "top3_variance_share", *optimus.ATTRIBUTES}
    assert all(0.0 <= value <= 1.0 for value in quality.values())


def test_attribute_labels_index_each_objects_attributes():
    labels = optimus.attribute_labels(["a blue square on the right bouncing",
                                       "a red circle on the left moving right and a green "
                                       "triangle on the right moving left"])
    colours = optimus.ATTRIBUTE_VALUES[0]
    assert labels[0].tolist() == [colours.index("blue"), 1, 1, 2, -100, -100, -100, -100]
    assert labels[1].tolist() == [colours.index("red"), 0, 0, 1,
                                  colours.index("green"), 2, 1, 0]


def test_attribute_loss_is_small_for_the_right_logits_and_skips_missing_objects():
    labels = optimus.attribute_labels(["a blue square on the right bouncing"])
    widths = [len(v) for v in optimus.ATTRIBUTE_VALUES] * optimus.MAX_OBJECTS
    right = torch.cat([20 * torch.nn.functional.one_hot(label.clamp(min=0), width)
                       for label, width in zip(labels[0], widths, strict=True)]).float()[None]
    assert float(optimus.attribute_loss(right, labels)) < 1e-6
    wrong = torch.cat([20 * torch.nn.functional.one_hot((label.clamp(min=0) + 1) % width, width)
                       for label, width in zip(labels[0], widths, strict=True)]).float()[None]
    assert float(optimus.attribute_loss(wrong, labels)) == pytest.approx(4 * 20, rel=0.01)


def test_only_the_attribute_head_shapes_the_encoder(official):
    """The decoder reads a detached latent: the caption loss leaves the encoder's gradient alone."""
    torch.manual_seed(0)
    encoder, decoder = optimus.fresh_optimus(official)
    encoder.eval(), decoder.eval()  # no dropout: both passes below see the same network
    head = optimus.attribute_head(TEXT_LATENT)
    modules = {optimus.ENCODER: encoder, optimus.DECODER: decoder, optimus.ATTRIBUTE_HEAD: head}
    batch = optimus._optimus_batch(np.random.default_rng(0), 4)
    optimus.optimus_loss(modules, batch, 0)[0].backward()
    full = [p.grad.clone() for p in encoder.parameters() if p.grad is not None]
    assert any(g.abs().sum() > 0 for g in full)
    encoder.zero_grad()
    mean = encoder(batch["encoder_ids"]).mean
    optimus.attribute_loss(head(mean), batch["attributes"]).backward()
    alone = [p.grad for p in encoder.parameters() if p.grad is not None]
    for ours, theirs in zip(full, alone, strict=True):
        torch.testing.assert_close(ours, optimus.ATTRIBUTE_WEIGHT * theirs)
