"""CoDi-Nano's configuration: the official CoDi structure at nano widths, and its data geometry.

Nano is the same set of networks as CoDi (same classes, same structure flags) sized to train on a
laptop CPU on the synthetic shapes world of `codi.nano.world`: 64 px images, 8-frame 2 s videos,
2.56 s sounds, and a 32-d shared conditioning space.
"""

from __future__ import annotations

import copy

from codi.models.official_config import FULL_CODI_CONFIG, OfficialConfig

IMAGE_SIZE = 64
NUM_FRAMES = 8
FPS = 4.0
SAMPLE_RATE = 16000
AUDIO_SECONDS = 2.56
AUDIO_SAMPLES = int(SAMPLE_RATE * AUDIO_SECONDS)
#: Mel frames of a clip (hop 160) and the audio latent's length after the VAE's factor 4.
MEL_FRAMES = 256
AUDIO_LATENT_FRAMES = MEL_FRAMES // 4
#: The shared conditioning space (CLIP and CLAP projections, UNet context) and Optimus latent.
CONTEXT_DIM = 32
TEXT_LATENT = 32

#: Generation defaults a nano model folder carries (the pipeline's defaults are the full model's).
#: Nano's connectors were trained cross-modal (each output attends to the others), so it runs so.
#: Its captions are decoded greedily: sampling (the official default) often swaps the colour word,
#: and with a fixed seed always the same way (docs/nano.md, Evaluation of the shipped model).
NANO_DEFAULTS = {"image_size": IMAGE_SIZE, "num_frames": NUM_FRAMES, "fps": FPS, "steps": 25,
                 "guidance_scale": 3.0, "cross_modal": True,
                 "text_decoding": {"mode": "greedy"}}
#: Shapes the pipeline reads from a model folder instead of its full-model constants.
NANO_GEOMETRY = {"audio_latent_frames": AUDIO_LATENT_FRAMES}

_UNET_COMMON = {
    "model_channels": 64, "channel_mult": [1, 2], "num_noattn_blocks": [1, 1],
    "with_attn": [True, True], "with_connector": [True, False],
    "channel_mult_connector": [1], "num_noattn_blocks_connector": [1],
    "connector_output_channel": 64, "num_heads": 4, "context_dim": CONTEXT_DIM,
}
_UNET_TEXT = {
    "model_channels": 64, "channel_mult": [1, 1], "num_noattn_blocks": [2, 2],
    "second_dim": [2, 2], "with_attn": [True, False], "with_connector": [True, False],
    "channel_mult_connector": [1, 1, 1], "num_noattn_blocks_connector": [1, 1, 1],
    "second_dim_connector": [2, 2, 2], "connector_output_channel": 64, "num_heads": 4,
    "context_dim": CONTEXT_DIM, "input_channels": TEXT_LATENT, "output_channels": TEXT_LATENT,
}
_BERT = {"hidden_size": 48, "intermediate_size": 128, "num_attention_heads": 2,
         "num_hidden_layers": 2, "max_position_embeddings": 64}
_GPT2 = {"n_embd": 48, "n_head": 2, "n_layer": 2, "n_ctx": 64, "n_positions": 64,
         "latent_size": TEXT_LATENT}
_RUNTIME = {
    "HIFIGAN_16K_64": {"upsample_initial_channel": 128},
    "HTSAT_large": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4]},
    "HTSAT_class_num": 16,
    "CLAP_audio_projection_in": 128,
}
_CLIP = {
    "model_type": "clip",
    "projection_dim": CONTEXT_DIM,
    "logit_scale_init_value": 2.6592,
    "text_config": {
        "vocab_size": 49408, "hidden_size": 48, "intermediate_size": 128,
        "projection_dim": CONTEXT_DIM, "num_hidden_layers": 2, "num_attention_heads": 2,
        "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    },
    "vision_config": {
        "hidden_size": 64, "intermediate_size": 128, "projection_dim": CONTEXT_DIM,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_channels": 3, "image_size": 224,
        "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    },
}


def nano_official(scale_factors: dict[str, float] | None = None) -> OfficialConfig:
    """CoDi-Nano's configuration; `scale_factors` (image/audio/text) once the VAEs are trained."""
    codi = copy.deepcopy(FULL_CODI_CONFIG)
    unets = codi["unet_config"]["args"]
    unets["unet_image_cfg"]["args"].update(copy.deepcopy(_UNET_COMMON))
    # The audio latent is 64×16: attention only on the half-resolution level keeps it cheap.
    unets["unet_audio_cfg"]["args"].update(
        copy.deepcopy(_UNET_COMMON), channel_mult=[1, 1], with_attn=[False, True])
    unets["unet_text_cfg"]["args"].update(copy.deepcopy(_UNET_TEXT))
    codi["autokl_cfg"]["args"]["ddconfig"].update(
        ch=32, ch_mult=[1, 2, 2, 2], num_res_blocks=1, resolution=IMAGE_SIZE)
    codi["audioldm_cfg"]["args"]["ddconfig"].update(
        ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, resolution=MEL_FRAMES)
    optimus = codi["optimus_cfg"]["args"]
    optimus["encoder"]["args"]["config"].update(_BERT)
    optimus["encoder"]["args"]["latent_size"] = TEXT_LATENT
    optimus["decoder"]["args"]["config"].update(_GPT2)
    optimus["args"]["latent_size"] = TEXT_LATENT
    codi["clap_cfg"]["args"]["joint_embed_shape"] = CONTEXT_DIM
    for modality, factor in (scale_factors or {}).items():
        codi[f"{'vision' if modality == 'image' else modality}_scale_factor"] = float(factor)
    return OfficialConfig(
        codi=codi, runtime_overrides=copy.deepcopy(_RUNTIME), clip_config=copy.deepcopy(_CLIP)
    )
