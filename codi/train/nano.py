"""Train CoDi-Nano from scratch: every stage in order, resumable, then export the model folder.

Stage 1: the autoencoders (image VAE, audio VAE, vocoder, Optimus), bridge alignment of the prompt
encoders, the latent cache, and the three diffusion UNets. Stage 2: the connectors, trained
cross-modal against the frozen UNets. A finished stage is loaded from `run_dir`, an interrupted
one resumes from its checkpoint, so the command can be re-run until it completes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codi.models.joint import UNET_OF_MODALITY
from codi.nano.config import nano_official
from codi.nano.export import export_nano, folder_megabytes
from codi.store.assets import NANO_DIR
from codi.train.connectors import train_connectors
from codi.train.diffusion import train_unet
from codi.train.latent_cache import build_latent_cache
from codi.train.loop import default_accelerator, stage_seconds

CACHE_SCENES = 2048
CACHE_SEED = 31


def _finished_stage_seconds(run_dir: Path) -> dict[str, float]:
    """Training seconds of every finished stage in `run_dir`."""
    names = sorted(done.parent.name for done in Path(run_dir).glob("*/done.json"))
    return {name: stage_seconds(run_dir, name) for name in names}


def train_stage1_autoencoders(
    official, run_dir: Path, steps: int | None, accelerator, stage_steps: dict[str, int]
):
    """Image VAE, audio VAE, vocoder and Optimus, with their latent scale factors."""
    from codi.train.optimus import OPTIMUS_STAGE, train_optimus
    from codi.train.vae import (
        AUDIO_STAGE,
        IMAGE_STAGE,
        load_scale_factor,
        train_vae_audio,
        train_vae_image,
    )
    from codi.train.vocoder import VOCODER_STAGE, train_vocoder

    components: dict[str, nn.Module] = {}
    stages = {IMAGE_STAGE: train_vae_image, AUDIO_STAGE: train_vae_audio,
              VOCODER_STAGE: train_vocoder, OPTIMUS_STAGE: train_optimus}
    for name, train in stages.items():
        components |= train(official, run_dir, stage_steps.get(name, steps), accelerator)
    factors = {"image": load_scale_factor(run_dir, IMAGE_STAGE),
               "audio": load_scale_factor(run_dir, AUDIO_STAGE),
               "text": load_scale_factor(run_dir, OPTIMUS_STAGE)}
    components["vae_image"].register_to_config(scaling_factor=factors["image"])
    components["vae_audio"].register_to_config(scaling_factor=factors["audio"])
    return components, factors


def small_pools(steps: int) -> dict:
    """Alignment plans whose data pools are no bigger than `steps` batches (smoke runs)."""
    from dataclasses import replace

    from codi.train.align import DEFAULT_PLANS

    return {name: replace(plan, pool=min(plan.pool, steps * plan.batch_size))
            for name, plan in DEFAULT_PLANS.items()}


def train_nano(
    run_dir: Path,
    export_dir: Path | None = NANO_DIR,
    steps: int | None = None,
    cache_scenes: int = CACHE_SCENES,
    accelerator=None,
    stage_steps: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage; export to `export_dir` (None: don't). Returns a summary.

    `steps` overrides every stage's step count (for smoke tests); None uses each stage's default.
    `stage_steps` overrides single stages by name (an autoencoder, a `diffusion_*` UNet or
    `connectors`), e.g. {"optimus": 500}.
    """
    stage_steps = dict(stage_steps or {})
    from codi.store.assets import VOCAB_DIR
    from codi.store.tokenizers import tokenizers_from_vocab
    from codi.train.align import train_alignment

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = default_accelerator(accelerator)
    started = time.time()
    components, factors = train_stage1_autoencoders(nano_official(), run_dir, steps, accelerator,
                                                    stage_steps)
    official = nano_official(factors)
    components |= train_alignment(official, run_dir, steps, accelerator,
                                  plans=None if steps is None else small_pools(steps))
    for module in components.values():
        module.requires_grad_(False).eval()
    tokenizers = tokenizers_from_vocab(VOCAB_DIR)
    cache_path = run_dir / "latent_cache.pt"
    if accelerator.is_main_process:
        with torch.no_grad():
            build_latent_cache(cache_path, components, tokenizers, factors["text"],
                               cache_scenes, CACHE_SEED)
    accelerator.wait_for_everyone()
    cache = torch.load(cache_path, weights_only=True)
    unets = {
        UNET_OF_MODALITY[m]: train_unet(m, official, cache, run_dir,
                                        stage_steps.get(f"diffusion_{m}", steps), accelerator)
        for m in ("image", "audio", "text")
    }
    components |= unets
    components |= train_connectors(official, unets, cache, run_dir,
                                   stage_steps.get("connectors", steps), accelerator)
    summary = {"run_dir": str(run_dir), "scale_factors": factors,
               "stage_seconds": _finished_stage_seconds(run_dir), "cache_scenes": cache_scenes,
               "seconds_this_run": round(time.time() - started, 1),
               "processes": accelerator.num_processes, "stage_steps": stage_steps}
    summary["training_hours"] = round(sum(summary["stage_seconds"].values()) / 3600, 3)
    if export_dir is not None and accelerator.is_main_process:
        folder = export_nano(components, official, export_dir, training=summary)
        summary |= {"export_dir": str(folder), "export_mb": round(folder_megabytes(folder), 2)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
