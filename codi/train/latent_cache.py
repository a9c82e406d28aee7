"""World scenes → the latents and conditioning tokens the diffusion stages train on (cached once).

Each scene gives the image, video, audio and caption latents (through the trained, frozen
autoencoders, exactly as the pipeline decodes them back) and one shared-space token per modality
(through the aligned, frozen encoders, exactly as the pipeline encodes inputs), plus the
unconditional token of each modality, which classifier-free guidance needs at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from codi.pipeline.conditioning import (
    ConditionEncoder,
    RandomSources,
    image_to_condition_tensor,
)
from codi.store.tokenizers import optimus_bert_token_ids
from codi.train.vae import pixels_to_tensor, world_fbank

#: Latent keys and the token keys of a cache.
LATENTS = ("image", "video", "audio", "text")
TOKENS = ("tok_text", "tok_image", "tok_audio")


def _condition_encoder(components: dict[str, nn.Module], tokenizers: dict):
    """The pipeline's own input encoder over `components`, and deterministic random sources."""
    encoder = ConditionEncoder(components.__getitem__, tokenizers["clip"], torch.device("cpu"),
                               torch.float32)
    return encoder, RandomSources(torch.Generator().manual_seed(0), np.random.RandomState(0), False)


@torch.no_grad()
def encode_world_batch(
    batch, components: dict[str, nn.Module], tokenizers: dict, text_scale: float
) -> dict[str, torch.Tensor]:
    """One `codi.nano.world.WorldBatch` → latents (posterior means, scaled) and tokens.

    Video tokens are left out: CLIP on every frame is the slowest part of the cache, and a video
    input's token lies near its frames' (the temporal layer is a residual on them).
    """
    n = len(batch.captions)
    vae, audio_vae = components["vae_image"], components["vae_audio"]
    image = vae.config.scaling_factor * vae.encode(
        pixels_to_tensor(batch.images)).latent_dist.mean
    frames = pixels_to_tensor(batch.videos.reshape(-1, *batch.videos.shape[2:]))
    video = vae.config.scaling_factor * vae.encode(frames).latent_dist.mean
    video = video.reshape(n, -1, *video.shape[1:]).permute(0, 2, 1, 3, 4)
    audio = audio_vae.config.scaling_factor * audio_vae.encode(
        world_fbank(batch.audios)).latent_dist.mean
    ids = optimus_bert_token_ids(tokenizers["optimus_bert"], batch.captions)
    text = text_scale * components["optimus_encoder"](ids).mean
    encoder, rng = _condition_encoder(components, tokenizers)
    image_cond = torch.stack([image_to_condition_tensor(Image.fromarray(i), rng)
                              for i in batch.images])
    return {
        "image": image, "video": video, "audio": audio, "text": text,
        "tok_text": encoder.text(list(batch.captions))[:, 0],
        "tok_image": encoder.pixels(image_cond)[:, 0],
        "tok_audio": encoder.audio(torch.from_numpy(batch.audios).float(), rng)[:, 0],
    }


@torch.no_grad()
def unconditional_tokens(
    components: dict[str, nn.Module], tokenizers: dict
) -> dict[str, torch.Tensor]:
    """What the pipeline feeds for "no input" of each modality (empty prompt, zeros, silence)."""
    from codi.nano.config import AUDIO_SAMPLES, IMAGE_SIZE

    encoder, rng = _condition_encoder(components, tokenizers)
    black = Image.fromarray(np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
    zero_image = torch.zeros_like(image_to_condition_tensor(black, rng))[None]
    return {
        "tok_text": encoder.text([""])[0, 0],
        "tok_image": encoder.pixels(zero_image)[0, 0],
        "tok_audio": encoder.audio(torch.zeros(1, AUDIO_SAMPLES), rng)[0, 0],
    }


def build_latent_cache(
    path: Path,
    components: dict[str, nn.Module],
    tokenizers: dict,
    text_scale: float,
    scenes: int,
    seed: int,
    sample_batch: Callable | None = None,
    chunk: int = 64,
) -> dict[str, torch.Tensor]:
    """Encode `scenes` world scenes (seeded) into `path` (reused when it exists); return it."""
    path = Path(path)
    if path.exists():
        return torch.load(path, weights_only=True)
    if sample_batch is None:
        from codi.nano.world import sample_batch
    rng = np.random.default_rng(seed)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in tqdm(range(0, scenes, chunk), desc="latent cache", unit="chunk"):
        batch = sample_batch(rng, min(chunk, scenes - start))
        for key, value in encode_world_batch(batch, components, tokenizers, text_scale).items():
            parts.setdefault(key, []).append(value.float().contiguous())
    cache = {key: torch.cat(values) for key, values in parts.items()}
    cache |= {f"uncond_{k}": v for k, v in unconditional_tokens(components, tokenizers).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path.with_suffix(".partial"))
    path.with_suffix(".partial").replace(path)
    return cache
