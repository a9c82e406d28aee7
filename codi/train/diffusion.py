"""Stage 1 latent diffusion: each UNet learns to predict the noise on its modality's latents.

Latents and conditioning tokens come from the latent cache (`codi.train.latent_cache`); the noise
schedule is CoDi's (scaled-linear betas, 1000 steps: `codi.pipeline.sampling.make_scheduler`).
The image UNet trains on images and, every other step, on 8-frame videos (its temporal layers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codi.models.joint import UNET_OF_MODALITY
from codi.models.official_config import OfficialConfig
from codi.models.registry import model_component
from codi.pipeline.sampling import make_scheduler
from codi.train.conditioning_mix import pick_context
from codi.train.loop import TrainSpec, run_stage

#: Default schedule per UNet on a 2-core CPU (steps, batch size, learning rate).
DEFAULTS = {
    "image": TrainSpec("diffusion_image", steps=3400, batch_size=32, lr=5e-4, warmup=100, seed=11),
    "audio": TrainSpec("diffusion_audio", steps=4800, batch_size=16, lr=5e-4, warmup=50, seed=12),
    "text": TrainSpec("diffusion_text", steps=20000, batch_size=64, lr=5e-4, warmup=100, seed=13),
}
#: The image UNet's video batches are this many times smaller than its image batches.
VIDEO_BATCH_DIVISOR = 2


def noised(latents: torch.Tensor, alphas_cumprod: torch.Tensor, rng: np.random.Generator):
    """(x_t, t, eps) for clean `latents`, t uniform over the 1000 training steps."""
    n = latents.shape[0]
    t = torch.from_numpy(rng.integers(0, len(alphas_cumprod), size=n))
    eps = torch.from_numpy(rng.standard_normal(latents.shape).astype(np.float32))
    a = alphas_cumprod[t].view(n, *([1] * (latents.dim() - 1)))
    return a.sqrt() * latents + (1 - a).sqrt() * eps, t, eps


def diffusion_batches(modality: str, cache: dict[str, torch.Tensor], official: OfficialConfig):
    """make_batch for one UNet: noised latents of `modality` (image UNet: images or videos)."""
    alphas = make_scheduler(official).alphas_cumprod.float()
    size = cache["tok_text"].shape[0]

    def make_batch(rng: np.random.Generator, batch_size: int) -> dict[str, torch.Tensor]:
        kind = modality
        if modality == "image" and rng.random() < 0.5:
            kind, batch_size = "video", max(1, batch_size // VIDEO_BATCH_DIVISOR)
        index = rng.integers(0, size, size=batch_size)
        x_t, t, eps = noised(cache[kind][index].contiguous(), alphas, rng)
        return {"x_t": x_t, "t": t, "eps": eps, "context": pick_context(cache, index, rng)}

    return make_batch


def diffusion_loss(name: str):
    """MSE between the predicted and the true noise."""

    def loss_fn(modules: dict[str, nn.Module], batch, step: int):
        eps = modules[name](batch["x_t"], batch["t"], batch["context"])
        loss = F.mse_loss(eps.float(), batch["eps"])
        kind = "video" if batch["x_t"].dim() == 5 else "latent"
        return loss, {f"mse_{kind}": float(loss.detach())}

    return loss_fn


def train_unet(
    modality: str,
    official: OfficialConfig,
    cache: dict[str, torch.Tensor],
    run_dir: Path,
    steps: int | None = None,
    accelerator=None,
) -> nn.Module:
    """Train the UNet of `modality` ("image" also learns video) from scratch; return it."""
    name = UNET_OF_MODALITY[modality]
    spec = DEFAULTS[modality]
    if steps is not None:
        spec = TrainSpec(**{**spec.__dict__, "steps": steps})
    torch.manual_seed(spec.seed)
    unet = model_component(name).build(official)
    trained = run_stage(spec, {name: unet}, diffusion_loss(name),
                        diffusion_batches(modality, cache, official), run_dir, accelerator)
    return trained[name]
