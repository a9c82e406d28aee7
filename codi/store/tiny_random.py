"""The tiny random-weight CoDi shipped in `assets/codi-tiny-random/` (`--model tiny`).

It has every component of CoDi (connectors included) with the official structure and tiny
widths, so the whole any-to-any path runs with no download and tests run in seconds; its outputs
are noise. The embedded default is CoDi-Nano (`assets/codi-nano`); this model serves when that
folder is absent. `python -m codi.store.tiny_random build` regenerates it, deterministically
from a seed.
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import sys
from pathlib import Path

import torch

from codi.models.official_config import FULL_CODI_CONFIG, OfficialConfig
from codi.store.assets import TINY_RANDOM_DIR, VOCAB_DIR

TINY_RANDOM_KIND = "tiny-random"
TINY_RANDOM_ID = "codi-tiny-random"
SEED = 20230519
TINY_RANDOM_NOTE = (
    "tiny random-weight model: outputs are noise until you download the full model with "
    "`python -m codi download`"
)
#: Standard deviations used to re-draw constant-initialised parameters (see `randomise_`).
ONE_D_STD = 0.05
OFFSET_STD = 0.1

#: One level instead of four (no down/up-sampling; the rest of the structure is kept); 64 channels
#: is the least the connectors' GroupNorm(32) on model_channels / 2 allows.
_TINY_UNET = {
    "model_channels": 64, "channel_mult": [1], "num_noattn_blocks": [1],
    "with_attn": [True], "with_connector": [True],
    "channel_mult_connector": [1], "num_noattn_blocks_connector": [1],
    "connector_output_channel": 32, "num_heads": 4, "context_dim": 32,
}
_TINY_VAE = {"ch": 32, "num_res_blocks": 1}
#: The text models are only 4 wide: their vocabulary tables dominate the size.
_TINY_BERT = {
    "hidden_size": 4, "intermediate_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
    "max_position_embeddings": 512,
}
_TINY_GPT2 = {"n_embd": 4, "n_head": 2, "n_layer": 1, "n_ctx": 512, "n_positions": 512}
_TINY_RUNTIME = {
    "HIFIGAN_16K_64": {"upsample_initial_channel": 32},
    "HTSAT_large": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4]},
    "HTSAT_class_num": 16,
    "CLAP_audio_projection_in": 64,
}
_TINY_CLIP = {
    "model_type": "clip",
    "projection_dim": 32,
    "logit_scale_init_value": 2.6592,
    "text_config": {
        "vocab_size": 49408, "hidden_size": 4, "intermediate_size": 8, "projection_dim": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "pad_token_id": 1,
        "bos_token_id": 0, "eos_token_id": 2,
    },
    "vision_config": {
        "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_channels": 3, "image_size": 224,
        "patch_size": 14, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    },
}


def tiny_official() -> OfficialConfig:
    """The official CoDi configuration with tiny widths and depths (same structure flags)."""
    codi = copy.deepcopy(FULL_CODI_CONFIG)
    unets = codi["unet_config"]["args"]
    for name in ("unet_image_cfg", "unet_audio_cfg", "unet_text_cfg"):
        unets[name]["args"].update(copy.deepcopy(_TINY_UNET))
    # The text key map needs 2 blocks a level and 3 environment levels; 64 channels keep at least
    # two values in every GroupNorm(32) group of the connectors (model_channels / 2 × second_dim).
    unets["unet_text_cfg"]["args"].update(
        model_channels=64, channel_mult=[1, 1], num_noattn_blocks=[2, 2], second_dim=[2, 2],
        with_attn=[True, False], with_connector=[True, False], channel_mult_connector=[1, 1, 1],
        num_noattn_blocks_connector=[1, 1, 1], second_dim_connector=[2, 2, 2],
    )
    codi["autokl_cfg"]["args"]["ddconfig"].update(_TINY_VAE, ch_mult=[1, 1, 1, 1])
    codi["audioldm_cfg"]["args"]["ddconfig"].update(_TINY_VAE, ch_mult=[1, 1, 1])
    optimus = codi["optimus_cfg"]["args"]
    optimus["encoder"]["args"]["config"].update(_TINY_BERT)
    optimus["decoder"]["args"]["config"].update(_TINY_GPT2)
    codi["clap_cfg"]["args"]["joint_embed_shape"] = 32
    return OfficialConfig(
        codi=codi,
        runtime_overrides=copy.deepcopy(_TINY_RUNTIME),
        clip_config=copy.deepcopy(_TINY_CLIP),
    )


@torch.no_grad()
def randomise_(module: torch.nn.Module, generator: torch.Generator) -> int:
    """Re-draw constant parameters (zero-init output layers, unit norm gains), in place.

    A freshly built CoDi has zero-initialised output convolutions and connectors, which would make
    the UNets and the connectors no-ops; drawing them makes every path compute something. Zero
    tensors get N(0, 1/sqrt(fan_in)) (1-D: N(0, 0.05)); other constants get + N(0, 0.1).
    Returns how many parameters were re-drawn.
    """
    count = 0
    for param in module.parameters():
        if not param.is_floating_point() or param.numel() < 2:
            continue
        first = param.reshape(-1)[0]
        if not torch.all(param == first):
            continue
        noise = torch.randn(param.shape, generator=generator)
        if float(first) == 0.0:
            fan_in = param[0].numel() if param.dim() > 1 else 0
            std = 1.0 / math.sqrt(fan_in) if fan_in else ONE_D_STD
            param.copy_(noise * std)
        else:
            param.add_(noise * OFFSET_STD)
        count += 1
    return count


def build(dst: Path = TINY_RANDOM_DIR, vocab_dir: Path = VOCAB_DIR, seed: int = SEED) -> Path:
    """Write the tiny random model as a converted folder (fp16 safetensors + tokenizers)."""
    from codi.convert.registry import all_specs
    from codi.convert.writer import write_component, write_model_index
    from codi.store.tokenizers import save_tokenizers

    dst = Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    official = tiny_official()
    specs = list(all_specs())
    sha256 = {}
    for index, spec in enumerate(specs):
        torch.manual_seed(seed + index)
        module = spec.build(official)
        randomise_(module, torch.Generator().manual_seed(seed + 1000 + index))
        buffers = {name for name, _ in module.named_buffers()}
        tensors = {
            key: value.half() if key not in buffers and value.is_floating_point() else value
            for key, value in module.state_dict().items()
        }
        sha256[spec.name] = write_component(dst / spec.name, spec, official, tensors)
    extra = {"kind": TINY_RANDOM_KIND, "model_id": TINY_RANDOM_ID, "note": TINY_RANDOM_NOTE,
             "seed": seed}
    write_model_index(dst, official, specs, sha256, extra)
    save_tokenizers(dst, vocab_dir)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codi.store.tiny_random",
        description="Regenerate the tiny random-weight model in assets/codi-tiny-random.",
    )
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--dest", type=Path, default=TINY_RANDOM_DIR, help="output folder")
    parser.add_argument("--vocab", type=Path, default=VOCAB_DIR, help="tokenizer vocab folder")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    folder = build(args.dest, args.vocab, args.seed)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"wrote {folder} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
