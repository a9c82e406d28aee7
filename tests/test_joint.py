"""Joint forward over several UNets, connectors and condition mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_unet_2d import SPEC, context_of  # noqa: F401  (shared fixture)

from codi.models.joint import joint_forward, mix_conditions
from codi.parity.checks.unet import CHECKS


@pytest.fixture(scope="module")
def models(context_of):  # noqa: F811
    ctx = context_of("joint_video_audio")
    names = ("unet_image", "unet_audio", "unet_image_connectors", "unet_audio_connectors")
    return {name: ctx.model(name) for name in names}


def test_joint_video_audio_parity(context_of):  # noqa: F811
    comparisons = CHECKS["joint_video_audio"](context_of("joint_video_audio"))
    assert {c.name for c in comparisons} >= {"eps0_video", "eps1_audio", "connector_raw0_video"}
    for comparison in comparisons:
        assert comparison.max_abs_error() <= comparison.atol, comparison.name


def _inputs():
    gen = torch.Generator().manual_seed(0)
    latents = {
        "image": torch.randn(1, 4, 16, 16, generator=gen),
        "audio": torch.randn(1, 8, 16, 8, generator=gen),
    }
    context = torch.nn.functional.normalize(torch.randn(1, 1, 32, generator=gen), dim=-1)
    return latents, torch.tensor([400]), context


def _setup(models):
    unets = {"image": models["unet_image"], "audio": models["unet_audio"]}
    connectors = {
        "image": models["unet_image_connectors"],
        "audio": models["unet_audio_connectors"],
    }
    return unets, connectors


@torch.no_grad()
def test_official_joint_exchanges_nothing(models):
    unets, connectors = _setup(models)
    latents, t, context = _inputs()
    base = joint_forward(unets, latents, t, context, connectors)
    changed = dict(latents, audio=latents["audio"] + 1.0)
    again = joint_forward(unets, changed, t, context, connectors)
    assert torch.equal(base["image"], again["image"])
    assert not torch.equal(base["audio"], again["audio"])


@torch.no_grad()
def test_cross_modal_option_exchanges(models):
    unets, connectors = _setup(models)
    latents, t, context = _inputs()
    base = joint_forward(unets, latents, t, context, connectors, cross_modal=True)
    changed = dict(latents, audio=latents["audio"] + 1.0)
    again = joint_forward(unets, changed, t, context, connectors, cross_modal=True)
    assert not torch.equal(base["image"], again["image"])


@torch.no_grad()
def test_absent_connectors_equal_single_runs(models):
    unets, connectors = _setup(models)
    latents, t, context = _inputs()
    joint = joint_forward(unets, latents, t, context, {"image": None, "audio": None})
    for modality, x in latents.items():
        assert torch.equal(joint[modality], unets[modality](x, t, context))
    single = joint_forward(unets, {"image": latents["image"]}, t, context, connectors)
    assert torch.equal(single["image"], unets["image"](latents["image"], t, context))


@torch.no_grad()
def test_zero_proj_out_connectors_are_identity(models):
    unets, connectors = _setup(models)
    image_connectors = SPEC["unet_image_connectors"].model_class.from_config(
        connectors["image"].config
    )
    image_connectors.load_state_dict(connectors["image"].state_dict())
    for layer in [
        *image_connectors.input_layers.values(),
        *image_connectors.output_layers.values(),
    ]:
        torch.nn.init.zeros_(layer.proj_out.weight)
        torch.nn.init.zeros_(layer.proj_out.bias)
    latents, t, context = _inputs()
    joint = joint_forward(
        unets, latents, t, context, dict(connectors, image=image_connectors.eval())
    )
    assert torch.equal(joint["image"], unets["image"](latents["image"], t, context))


def test_mix_conditions_uses_normalised_float64_weights():
    conditions = [torch.randn(2, 1, 8) for _ in range(3)]
    weights = [1.0, 0.5, 2.5]
    w = np.asarray(weights) / np.sum(weights)
    expected = sum(c.double() * wi for c, wi in zip(conditions, w, strict=True))
    mixed = mix_conditions(conditions, weights)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed.double(), expected, atol=1e-6)
    assert torch.equal(mix_conditions(conditions[:1], [3.0]), conditions[0])
