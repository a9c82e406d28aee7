"""Every component of CoDi by name: the class that opens its folder and how to build it.

The one table the runtime (opening a converted folder), the memory plan, the training stages, the
tiny model and the converter all build networks from; each `build` sizes the network from the
official configuration (`OfficialConfig`), with random or meta weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diffusers import AutoencoderKL
from torch import nn
from transformers import SpeechT5HifiGan

from codi.models.clap import CodiClapAudioModel, clap_audio_config
from codi.models.clip import (
    CoDiCLIPTextModel,
    CoDiCLIPVisionModel,
    text_config_of,
    vision_config_of,
)
from codi.models.connectors import CoDiConnectors2D
from codi.models.official_config import OfficialConfig
from codi.models.optimus import (
    OptimusDecoder,
    OptimusEncoder,
    optimus_bert_config,
    optimus_gpt2_config,
)
from codi.models.unet_2d import CoDiUNet2DModel
from codi.models.unet_text import CoDiTextConnectors, CoDiTextUNetModel
from codi.models.vae import build_audio_vae, build_image_vae
from codi.models.vocoder import build_vocoder


@dataclass(frozen=True)
class ModelComponent:
    """One component: `model_class.from_pretrained(folder / name)` opens it; `build` makes it."""

    name: str
    model_class: type
    build: Callable[[OfficialConfig], nn.Module]


def build_unet(official: OfficialConfig, modality: str) -> CoDiUNet2DModel:
    """Our UNet for 'image' (with video layers) or 'audio', from the official constructor args."""
    a = official.unet_args(modality)
    return CoDiUNet2DModel(
        in_channels=a["input_channels"],
        out_channels=a["output_channels"],
        model_channels=a["model_channels"],
        channel_mult=tuple(a["channel_mult"]),
        num_res_blocks=tuple(a["num_noattn_blocks"]),
        with_attn=tuple(a["with_attn"]),
        num_heads=a["num_heads"],
        context_dim=a["context_dim"],
        use_video_architecture=bool(a.get("use_video_architecture", False)),
    )


def build_connectors(official: OfficialConfig, modality: str) -> CoDiConnectors2D:
    """Our connectors of the 'image' or 'audio' UNet."""
    a = official.unet_args(modality)
    return CoDiConnectors2D(
        in_channels=a["input_channels"],
        model_channels=a["model_channels"],
        channel_mult=tuple(a["channel_mult"]),
        num_res_blocks=tuple(a["num_noattn_blocks"]),
        channel_mult_connector=tuple(a["channel_mult_connector"]),
        num_res_blocks_connector=tuple(a["num_noattn_blocks_connector"]),
        with_connector=tuple(a["with_connector"]),
        connector_output_channel=a["connector_output_channel"],
        num_heads=a["num_heads"],
        use_video_architecture=bool(a.get("use_video_architecture", False)),
        timed_environment=bool(a.get("timed_environment", False)),
    )


def _same_at_every_level(values: list[int], what: str) -> int:
    if len(set(values)) != 1:
        raise ValueError(f"{what} must be the same at every level (as released): {values}")
    return int(values[0])


def build_unet_text(official: OfficialConfig) -> CoDiTextUNetModel:
    """Our text UNet, sized from the official `unet_text_cfg`."""
    args = official.unet_args("text")
    return CoDiTextUNetModel(
        in_channels=args["input_channels"],
        out_channels=args["output_channels"],
        model_channels=args["model_channels"],
        channel_mult=tuple(args["channel_mult"]),
        num_res_blocks=tuple(args["num_noattn_blocks"]),
        with_attention=tuple(args["with_attn"]),
        second_dim=_same_at_every_level(args["second_dim"], "second_dim"),
        num_heads=args["num_heads"],
        context_dim=args["context_dim"],
    )


def build_text_connectors(official: OfficialConfig) -> CoDiTextConnectors:
    """Our text connectors, sized from the official `unet_text_cfg`."""
    args = official.unet_args("text")
    return CoDiTextConnectors(
        in_channels=args["input_channels"],
        model_channels=args["model_channels"],
        channel_mult=tuple(args["channel_mult"]),
        num_res_blocks=tuple(args["num_noattn_blocks"]),
        with_connector=tuple(args["with_connector"]),
        second_dim=_same_at_every_level(args["second_dim"], "second_dim"),
        num_heads=args["num_heads"],
        env_channel_mult=tuple(args.get("channel_mult_connector", (1, 2, 4))),
        env_num_res_blocks=tuple(args["num_noattn_blocks_connector"]),
        env_second_dim=_same_at_every_level(args["second_dim_connector"], "second_dim_connector"),
        environment_channels=args["connector_output_channel"],
    )


def _optimus_args(official: OfficialConfig) -> dict:
    return official.codi["optimus_cfg"]["args"]


def build_optimus_encoder(official: OfficialConfig) -> OptimusEncoder:
    """Our BERT encoder, sized by the official `optimus_cfg.encoder`."""
    args = _optimus_args(official)["encoder"]["args"]
    return OptimusEncoder(optimus_bert_config(args["config"], int(args["latent_size"])))


def build_optimus_decoder(official: OfficialConfig) -> OptimusDecoder:
    """Our GPT-2 decoder, sized by the official `optimus_cfg.decoder`."""
    args = _optimus_args(official)
    config = args["decoder"]["args"]["config"]
    latent_size = int(config.get("latent_size", args["args"]["latent_size"]))
    return OptimusDecoder(optimus_gpt2_config(config, latent_size))


def build_clip_text(official: OfficialConfig) -> CoDiCLIPTextModel:
    """CLIP's text tower, sized from the official `clip_cfg`."""
    return CoDiCLIPTextModel(text_config_of(official.clip_config))


def build_clip_vision(official: OfficialConfig) -> CoDiCLIPVisionModel:
    """CLIP's vision tower (+ temporal layers for video), sized from the official `clip_cfg`."""
    return CoDiCLIPVisionModel(vision_config_of(official.clip_config))


def build_clap(official: OfficialConfig) -> CodiClapAudioModel:
    """CLAP's HTSAT audio encoder, sized from the official `clap_cfg`."""
    return CodiClapAudioModel(clap_audio_config(official))


COMPONENTS: dict[str, ModelComponent] = {c.name: c for c in (
    ModelComponent("unet_image", CoDiUNet2DModel, lambda o: build_unet(o, "image")),
    ModelComponent("unet_image_connectors", CoDiConnectors2D,
                   lambda o: build_connectors(o, "image")),
    ModelComponent("unet_audio", CoDiUNet2DModel, lambda o: build_unet(o, "audio")),
    ModelComponent("unet_audio_connectors", CoDiConnectors2D,
                   lambda o: build_connectors(o, "audio")),
    ModelComponent("unet_text", CoDiTextUNetModel, build_unet_text),
    ModelComponent("unet_text_connectors", CoDiTextConnectors, build_text_connectors),
    ModelComponent("vae_image", AutoencoderKL, build_image_vae),
    ModelComponent("vae_audio", AutoencoderKL, build_audio_vae),
    ModelComponent("vocoder", SpeechT5HifiGan, build_vocoder),
    ModelComponent("optimus_encoder", OptimusEncoder, build_optimus_encoder),
    ModelComponent("optimus_decoder", OptimusDecoder, build_optimus_decoder),
    ModelComponent("clip_text", CoDiCLIPTextModel, build_clip_text),
    ModelComponent("clip_vision", CoDiCLIPVisionModel, build_clip_vision),
    ModelComponent("clap", CodiClapAudioModel, build_clap),
)}


def model_component(name: str) -> ModelComponent:
    """The component `name` (a converted folder's sub-folder name)."""
    try:
        return COMPONENTS[name]
    except KeyError:
        raise KeyError(f"no component named {name!r}") from None
