"""Timed environments: video and audio connectors that keep the time axis (not official)."""

from __future__ import annotations

import pytest
import torch

from codi.models.connectors import _aligned_cross_attention, per_position_tokens
from codi.models.joint import _environments, joint_forward, resample_tokens
from codi.models.registry import model_component
from codi.models.unet_2d import frame_environments, spatial_transformer
from codi.nano.config import nano_official


def _official(timed: bool):
    official = nano_official()
    for key in ("unet_image_cfg", "unet_audio_cfg"):
        official.codi["unet_config"]["args"][key]["args"]["timed_environment"] = timed
    return official


@pytest.fixture(scope="module")
def timed_models():
    torch.manual_seed(0)
    official = _official(True)
    names = ("unet_image", "unet_audio", "unet_text", "unet_image_connectors",
             "unet_audio_connectors", "unet_text_connectors")
    models = {name: model_component(name).build(official).eval() for name in names}
    for name in ("unet_image_connectors", "unet_audio_connectors"):
        connectors = models[name]
        for layer in (*connectors.input_layers.values(), *connectors.output_layers.values()):
            torch.nn.init.normal_(layer.proj_out.weight, std=0.1)  # as if trained
    return models


@torch.no_grad()
def test_fresh_connectors_change_nothing():
    torch.manual_seed(3)
    official = _official(True)
    unets = {"video": model_component("unet_image").build(official).eval(),
             "audio": model_component("unet_audio").build(official).eval()}
    connectors = {"video": model_component("unet_image_connectors").build(official).eval(),
                  "audio": model_component("unet_audio_connectors").build(official).eval()}
    latents = {m: x for m, x in _latents().items() if m != "text"}
    t, context = torch.tensor([300]), torch.nn.functional.normalize(torch.randn(1, 1, 32), dim=-1)
    joint = joint_forward(unets, latents, t, context, connectors, cross_modal=True)
    for modality, x in latents.items():
        assert torch.equal(joint[modality], unets[modality](x, t, context))


def _latents():
    gen = torch.Generator().manual_seed(1)
    return {
        "video": torch.randn(1, 4, 4, 8, 8, generator=gen),
        "audio": torch.randn(1, 8, 16, 8, generator=gen),
        "text": torch.randn(1, 32, generator=gen),
    }


def _setup(models, modalities):
    unet_of = {"video": "unet_image", "image": "unet_image", "audio": "unet_audio",
               "text": "unet_text"}
    unets = {m: models[unet_of[m]] for m in modalities}
    connectors = {m: models[unet_of[m] + "_connectors"] for m in modalities}
    return unets, connectors


def test_flag_comes_from_the_official_args():
    for timed in (False, True):
        for name in ("unet_image_connectors", "unet_audio_connectors"):
            module = model_component(name).build(_official(timed))
            assert module.config.timed_environment is timed


@torch.no_grad()
def test_aligned_processor_is_attention_for_one_token():
    torch.manual_seed(2)
    layer = spatial_transformer(64, 4, 16).eval()
    h, env = torch.randn(2, 64, 8, 4), torch.randn(2, 1, 16)
    plain = layer(h, encoder_hidden_states=env, return_dict=False)[0]
    before = [type(block.attn2.processor) for block in layer.transformer_blocks]
    with _aligned_cross_attention(layer):
        aligned = layer(h, encoder_hidden_states=env, return_dict=False)[0]
    assert torch.allclose(plain, aligned, atol=1e-5)
    assert [type(block.attn2.processor) for block in layer.transformer_blocks] == before


def test_per_position_tokens_follow_rows():
    tokens = torch.arange(4.0).view(1, 4, 1)
    h = torch.zeros(1, 3, 8, 2)
    assert per_position_tokens(tokens, h)[0, :, 0].tolist() == [
        0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]


@torch.no_grad()
def test_a_time_step_token_reaches_only_its_time(timed_models):
    connectors = timed_models["unet_audio_connectors"]
    index = int(next(iter(connectors.input_layers)))
    channels = connectors.input_layers[str(index)].config.in_channels
    h = torch.randn(1, channels, 16, 8)
    env = torch.nn.functional.normalize(torch.randn(1, 4, 64), dim=-1)
    base = connectors.after_input_block(index, h, env)
    changed_env = env.clone()
    changed_env[:, 2] = torch.nn.functional.normalize(torch.randn(64), dim=-1)
    changed = connectors.after_input_block(index, h, changed_env)
    moved = (changed - base).abs().amax(dim=(0, 1, 3)) > 1e-6
    assert moved.tolist() == [False] * 8 + [True] * 4 + [False] * 4


def test_resample_tokens():
    tokens = torch.arange(8.0).view(1, 8, 1)
    assert resample_tokens(tokens, 8) is tokens
    assert resample_tokens(tokens, 2)[0, :, 0].tolist() == [1.5, 5.5]
    assert resample_tokens(tokens[:, :2], 4)[0, :, 0].tolist() == [0, 0, 1, 1]
    assert resample_tokens(tokens, 1)[0, 0, 0].item() == 3.5
    assert resample_tokens(tokens[:, :1], 3)[0, :, 0].tolist() == [0, 0, 0]


def test_resample_tokens_lines_up_seconds():
    audio = torch.arange(64.0).view(1, 64, 1)  # 2.56 s, 0.04 s a step
    video = resample_tokens(audio, 8, seconds=2.56, to_seconds=2.0)  # 8 frames of 0.25 s
    # frame 1 spans 0.25-0.5 s: the audio steps whose middles fall there are 6..11
    assert video[0, 1, 0].item() == pytest.approx(sum(range(6, 12)) / 6)
    frames = torch.arange(8.0).view(1, 8, 1)
    back = resample_tokens(frames, 64, seconds=2.0, to_seconds=2.56)[0, :, 0]
    assert back[:6].tolist() == [0] * 6 and back[6:12].tolist() == [1] * 6
    assert back[50:].tolist() == [7] * 14  # after the video ends: its last frame


def test_frame_environments():
    pooled = torch.randn(2, 1, 5)
    assert torch.equal(frame_environments(pooled, 3), pooled.repeat_interleave(3, 0))
    timed = torch.randn(2, 3, 5)
    split = frame_environments(timed, 3)
    assert split.shape == (6, 1, 5) and torch.equal(split[4, 0], timed[1, 1])
    with pytest.raises(ValueError, match="4 steps for 3 frames"):
        frame_environments(torch.randn(2, 4, 5), 3)


@torch.no_grad()
def test_environments_keep_time_for_video_and_audio_only(timed_models):
    unets, connectors = _setup(timed_models, ("video", "audio", "text"))
    envs = _environments(unets, _latents(), torch.tensor([300]), connectors)
    assert envs["video"].shape == (1, 4, 64)
    assert envs["audio"].shape == (1, 16, 64)
    assert envs["text"].shape == (1, 1, 64)
    assert torch.allclose(envs["audio"].norm(dim=-1), torch.ones(1, 16))


@torch.no_grad()
def test_cross_modal_timed_joint_forward_exchanges(timed_models):
    unets, connectors = _setup(timed_models, ("video", "audio", "text"))
    latents, t = _latents(), torch.tensor([300])
    context = torch.nn.functional.normalize(torch.randn(1, 1, 32), dim=-1)
    base = joint_forward(unets, latents, t, context, connectors, cross_modal=True)
    assert {m: tuple(v.shape) for m, v in base.items()} == {
        m: tuple(x.shape) for m, x in latents.items()}
    changed = joint_forward(unets, dict(latents, audio=latents["audio"] + 1.0), t, context,
                            connectors, cross_modal=True)
    assert not torch.equal(base["video"], changed["video"])
