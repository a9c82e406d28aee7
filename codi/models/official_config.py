"""The official CoDi configuration, as a plain description our models are built from.

The official code builds every network from `configs/model/codi.yaml` plus a few sizes that are
hard-coded in its source (HiFi-GAN width, HTSAT depth) and the Hub CLIP `config.json`. The parity
fixtures ship the same three pieces for their tiny model (`index.json → _meta`), so one structure
describes both the full model and any fixture model, and every component builds from it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

_UNET_COMMON: dict[str, Any] = {
    "num_noattn_blocks": [2, 2, 2, 2],
    "with_attn": [True, True, True, False],
    "num_noattn_blocks_connector": [1, 1, 1],
    "with_connector": [True, True, True, False],
    "connector_output_channel": 1280,
    "num_heads": 8,
    "context_dim": 768,
}

FULL_CODI_CONFIG: dict[str, Any] = {
    "unet_config": {
        "args": {
            "unet_image_cfg": {
                "args": {
                    **_UNET_COMMON,
                    "input_channels": 4,
                    "model_channels": 320,
                    "output_channels": 4,
                    "channel_mult": [1, 2, 4, 4],
                    "channel_mult_connector": [1, 2, 4],
                    "use_video_architecture": True,
                }
            },
            "unet_audio_cfg": {
                "args": {
                    **_UNET_COMMON,
                    "input_channels": 8,
                    "model_channels": 192,
                    "output_channels": 8,
                    "channel_mult": [1, 2, 4, 4],
                    "channel_mult_connector": [1, 2, 4],
                }
            },
            "unet_text_cfg": {
                "args": {
                    **_UNET_COMMON,
                    "input_channels": 768,
                    "model_channels": 320,
                    "output_channels": 768,
                    "channel_mult": [1, 2, 4, 4],
                    "second_dim": [4, 4, 4, 4],
                    "second_dim_connector": [4, 4, 4],
                    "channel_mult_connector": [1, 2, 4],
                }
            },
        }
    },
    "autokl_cfg": {
        "args": {
            "embed_dim": 4,
            "ddconfig": {
                "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3,
                "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                "attn_resolutions": [], "dropout": 0.0,
            },
        }
    },
    "audioldm_cfg": {
        "args": {
            "embed_dim": 8,
            "ddconfig": {
                "double_z": True, "z_channels": 8, "resolution": 256, "downsample_time": False,
                "in_channels": 1, "out_ch": 1, "ch": 128, "ch_mult": [1, 2, 4],
                "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
            },
        }
    },
    "optimus_cfg": {
        "args": {
            "encoder": {
                "args": {
                    "config": {
                        "hidden_act": "gelu", "hidden_size": 768, "intermediate_size": 3072,
                        "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
                        "num_attention_heads": 12, "num_hidden_layers": 12,
                        "type_vocab_size": 2, "vocab_size": 28996,
                    },
                    "latent_size": 768,
                }
            },
            "decoder": {
                "args": {
                    "config": {
                        "latent_size": 768, "layer_norm_epsilon": 1e-05, "n_ctx": 1024,
                        "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
                        "vocab_size": 50260,
                    }
                }
            },
            "args": {"latent_size": 768},
        }
    },
    "clap_cfg": {"args": {"amodel": "HTSAT-large", "joint_embed_shape": 768}},
    "beta_linear_start": 0.00085,
    "beta_linear_end": 0.012,
    "timesteps": 1000,
    "vision_scale_factor": 0.18215,
    "text_scale_factor": 4.3108,
    "audio_scale_factor": 0.9228,
}

# Sizes the official code hard-codes instead of reading from the YAML.
FULL_RUNTIME_OVERRIDES: dict[str, Any] = {
    "HIFIGAN_16K_64": {"upsample_initial_channel": 1024},
    "HTSAT_large": {"embed_dim": 256, "depths": [2, 2, 12, 2], "num_heads": [4, 8, 16, 32]},
    "HTSAT_class_num": 527,
    "CLAP_audio_projection_in": 2048,
}

_CLIP_TEXT = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "projection_dim": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0,
    "eos_token_id": 2,
}
_CLIP_VISION = {
    "hidden_size": 1024, "intermediate_size": 4096, "projection_dim": 768,
    "num_hidden_layers": 24, "num_attention_heads": 16, "num_channels": 3, "image_size": 224,
    "patch_size": 14, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
}
# openai/clip-vit-large-patch14 `config.json` (the values CoDi's CLIP is built with).
FULL_CLIP_CONFIG: dict[str, Any] = {
    "model_type": "clip",
    "projection_dim": 768,
    "logit_scale_init_value": 2.6592,
    "text_config": _CLIP_TEXT,
    "vision_config": _CLIP_VISION,
}


@dataclass
class OfficialConfig:
    """Everything the official code reads to size its networks.

    codi: the `args` of the official `codi` model config (unet_config, autokl_cfg, audioldm_cfg,
        optimus_cfg, clap_cfg, schedule and scale factors).
    runtime_overrides: sizes hard-coded in the official source (HiFi-GAN, HTSAT, CLAP projection).
    clip_config: the Hugging Face CLIP `config.json` (text_config / vision_config).
    """

    codi: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(FULL_CODI_CONFIG))
    runtime_overrides: dict[str, Any] = field(
        default_factory=lambda: copy.deepcopy(FULL_RUNTIME_OVERRIDES)
    )
    clip_config: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(FULL_CLIP_CONFIG))

    @classmethod
    def full(cls) -> OfficialConfig:
        """The released CoDi model (5.7 B parameters)."""
        return cls()

    @classmethod
    def from_fixture_meta(cls, meta: dict[str, Any]) -> OfficialConfig:
        """Build from a parity fixture folder's `index.json → _meta`."""
        overrides = copy.deepcopy(FULL_RUNTIME_OVERRIDES)
        for key, value in meta.get("tiny_runtime_overrides", {}).items():
            if isinstance(value, dict) and isinstance(overrides.get(key), dict):
                overrides[key].update(value)
            else:
                overrides[key] = value
        clip = meta.get("clip_hf_folder", {}).get("config.json", FULL_CLIP_CONFIG)
        return cls(
            codi=copy.deepcopy(meta["tiny_config"]["args"]),
            runtime_overrides=overrides,
            clip_config=copy.deepcopy(clip),
        )

    def unet_args(self, modality: str) -> dict[str, Any]:
        """The official UNet constructor arguments for 'image' (also video), 'audio' or 'text'."""
        return self.codi["unet_config"]["args"][f"unet_{modality}_cfg"]["args"]

    @property
    def scale_factors(self) -> dict[str, float]:
        """Latent scale factors per output modality (video shares the image VAE)."""
        vision = float(self.codi["vision_scale_factor"])
        return {
            "image": vision,
            "video": vision,
            "text": float(self.codi["text_scale_factor"]),
            "audio": float(self.codi["audio_scale_factor"]),
        }
