"""Text UNet ("openai_unet_0dmd") and its connectors: sizes, key map, fixtures."""

from __future__ import annotations

import pytest
import torch

from codi.convert.maps.unet_text import SPECS
from codi.convert.registry import owner_of
from codi.models.official_config import OfficialConfig
from codi.models.registry import build_text_connectors, build_unet_text
from codi.models.unet_text import CoDiTextConnectors, CoDiTextUNetModel
from codi.parity.fixtures import load_fixture_tensors, read_index
from codi.parity.tolerances import FORWARD_ATOL


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_size_parameter_counts() -> None:
    with torch.device("meta"):
        unet = build_unet_text(OfficialConfig.full())
        connectors = build_text_connectors(OfficialConfig.full())
    assert _count(unet) == 1_708_848_448
    assert _count(connectors) == 339_536_960
    assert isinstance(unet.mid_block.resnets[0].fc1, torch.nn.Linear)  # bitsandbytes-quantisable


def test_connectors_start_as_identity() -> None:
    """A fresh connector module (no weights, as in the released files) changes nothing."""
    torch.manual_seed(0)
    kwargs = dict(model_channels=64, channel_mult=(1, 1), num_res_blocks=(1, 1), second_dim=2,
                  num_heads=4)
    unet = CoDiTextUNetModel(with_attention=(True, False), context_dim=8, **kwargs).eval()
    connectors = CoDiTextConnectors(with_connector=(True, False), env_channel_mult=(1, 1),
                                    env_num_res_blocks=(1, 1), env_second_dim=2,
                                    environment_channels=16, **kwargs).eval()
    x, t, c = torch.randn(2, 768), torch.tensor([3, 500]), torch.randn(2, 1, 8)
    with torch.no_grad():
        env = connectors.environment(x, unet.time_embedding(t, x.dtype))
        plain, joint = unet(x, t, c), unet(x, t, c, connectors, env)
    assert env.shape == (2, 1, 16)
    torch.testing.assert_close(env.norm(dim=-1), torch.ones(2, 1))
    torch.testing.assert_close(joint, plain)
    with pytest.raises(ValueError):
        unet(x, t, c, connectors=connectors)


def _tiny_models(official: OfficialConfig, weights: dict[str, torch.Tensor]) -> dict:
    models = {}
    for spec in SPECS:
        model = spec.build(official)
        state = {}
        for key, tensor in weights.items():
            owner = owner_of(key, SPECS)
            if owner is not None and owner[0] is spec:
                state.update(spec.map_tensor(owner[1], tensor))
        model.load_state_dict(state, strict=True)
        models[spec.name] = model.eval()
    return models


@pytest.fixture(scope="module")
def tiny_models(tiny_official, tiny_weights) -> dict:
    return _tiny_models(tiny_official, tiny_weights)


@pytest.mark.parametrize(
    ("fixture", "index"), [("joint_image_text", 1), ("joint_image_audio_text", 2)]
)
def test_environment_encoder_matches_official(fixture_dir, tiny_models, fixture, index) -> None:
    tensors = load_fixture_tensors(fixture_dir, read_index(fixture_dir)[fixture])
    unet, connectors = tiny_models["unet_text"], tiny_models["unet_text_connectors"]
    x = tensors[f"x{index}_text"]
    with torch.no_grad():
        emb = unet.time_embedding(tensors["timesteps"].expand(x.shape[0]), x.dtype)
        raw = connectors.raw_environment(x, emb)
    expected = tensors[f"connector_raw{index}_text"]
    assert raw.shape == expected.shape
    assert (raw - expected).abs().max() <= FORWARD_ATOL


def test_unet_matches_official(fixture_dir, tiny_models) -> None:
    tensors = load_fixture_tensors(fixture_dir, read_index(fixture_dir)["unet_text"])
    with torch.no_grad():
        eps = tiny_models["unet_text"](tensors["x"], tensors["timesteps"], tensors["context"])
    assert (eps - tensors["eps"]).abs().max() <= FORWARD_ATOL
