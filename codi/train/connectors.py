"""Stage 2: the connectors (environment encoders), trained on paired outputs with frozen UNets.

Several outputs of one scene are noised at the same step and denoised together; each output's
connectors attend to the *other* outputs' environments (`cross_modal=True` — the paper's joint
generation, which the official code never wires up), and only the connectors learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codi.models.joint import UNET_OF_MODALITY, joint_forward
from codi.models.official_config import OfficialConfig
from codi.models.registry import model_component
from codi.nano.world import AUDIO_SECONDS, VIDEO_SECONDS
from codi.pipeline.sampling import make_scheduler
from codi.train.conditioning_mix import pick_context
from codi.train.loop import TrainSpec, default_accelerator, run_stage

DEFAULT = TrainSpec("connectors", steps=1000, batch_size=8, lr=2e-3, warmup=25, seed=21)
#: Output sets trained together, and how often (video+audio carries the timing to learn).
OUTPUT_SETS = {
    ("video", "audio"): 0.4, ("image", "text"): 0.15, ("image", "audio"): 0.1,
    ("audio", "text"): 0.1, ("video", "audio", "text"): 0.15, ("image", "audio", "text"): 0.1,
}
#: Seconds the world's clips span, which line up timed environments.
WORLD_DURATIONS = {"video": VIDEO_SECONDS, "audio": AUDIO_SECONDS}
CONNECTORS = tuple(f"{unet}_connectors" for unet in ("unet_image", "unet_audio", "unet_text"))


def joint_batches(cache: dict[str, torch.Tensor], official: OfficialConfig):
    """make_batch: one output set, the same scenes and timestep for every output in it."""
    alphas = make_scheduler(official).alphas_cumprod.float()
    sets = list(OUTPUT_SETS)
    probs = np.array(list(OUTPUT_SETS.values()))
    size = cache["tok_text"].shape[0]

    def make_batch(rng: np.random.Generator, batch_size: int) -> dict:
        outputs = sets[rng.choice(len(sets), p=probs / probs.sum())]
        index = rng.integers(0, size, size=batch_size)
        t = torch.from_numpy(rng.integers(0, len(alphas), size=batch_size))
        a = alphas[t]
        x_t, eps = {}, {}
        for modality in outputs:
            # contiguous: a channels-last-strided input crashes CPU GroupNorm backward (torch 2.13)
            clean = cache[modality][index].contiguous()
            noise = torch.from_numpy(rng.standard_normal(clean.shape).astype(np.float32))
            scale = a.view(batch_size, *([1] * (clean.dim() - 1)))
            x_t[modality] = scale.sqrt() * clean + (1 - scale).sqrt() * noise
            eps[modality] = noise
        return {"x_t": x_t, "eps": eps, "t": t, "context": pick_context(cache, index, rng)}

    return make_batch


def joint_loss(unets: dict[str, nn.Module]):
    """Summed noise MSE of every output, denoised jointly through the connectors."""

    def loss_fn(modules: dict[str, nn.Module], batch, step: int):
        connectors = {m: modules[UNET_OF_MODALITY[m] + "_connectors"] for m in batch["x_t"]}
        eps = joint_forward({m: unets[UNET_OF_MODALITY[m]] for m in batch["x_t"]}, batch["x_t"],
                            batch["t"], batch["context"], connectors=connectors, cross_modal=True,
                            durations=WORLD_DURATIONS)
        losses = {m: F.mse_loss(eps[m].float(), batch["eps"][m]) for m in eps}
        return sum(losses.values()), {f"mse_{m}": float(v.detach()) for m, v in losses.items()}

    return loss_fn


def train_connectors(
    official: OfficialConfig,
    unets: dict[str, nn.Module],
    cache: dict[str, torch.Tensor],
    run_dir: Path,
    steps: int | None = None,
    accelerator=None,
) -> dict[str, nn.Module]:
    """Train the three connector modules against frozen `unets` (keyed by component name)."""
    spec = DEFAULT if steps is None else TrainSpec(**{**DEFAULT.__dict__, "steps": steps})
    accelerator = default_accelerator(accelerator)
    for unet in unets.values():  # frozen, so not prepared: put them where the batches go
        unet.requires_grad_(False).eval().to(accelerator.device)
    torch.manual_seed(spec.seed)
    modules = {name: model_component(name).build(official) for name in CONNECTORS}
    return run_stage(spec, modules, joint_loss(unets), joint_batches(cache, official), run_dir,
                     accelerator)
