"""Stage 1: the image and audio autoencoders (diffusers `AutoencoderKL`) on the nano world.

The image VAE learns world images and video frames (64 px → latent 4×8×8); the audio VAE learns
the log-mel "fbank" of world sounds exactly as `codi.models.mel` computes it (256 frames × 64 mels
→ latent 8×64×16). Both minimise L1 reconstruction plus a small KL; the image VAE adds an MSE and
an L1 on image gradients so the small flat shapes get their colours and keep sharp edges. After
training, each VAE's latent scale factor (1 / std of its unscaled posterior samples on a fixed
sample) is written into its config as `scaling_factor` and into `run_dir/<stage>/scale_factor.json`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from torch import nn

from codi.models.mel import wav_to_fbank
from codi.models.official_config import OfficialConfig
from codi.models.registry import model_component
from codi.nano import world
from codi.nano.config import MEL_FRAMES, NUM_FRAMES
from codi.pipeline.decoding import to_uint8
from codi.train.loop import TrainSpec, run_stage, stage_dir

IMAGE_STAGE = "vae_image"
AUDIO_STAGE = "vae_audio"
#: Weight of the mean KL per latent element against the mean L1 per pixel. Stronger (1e-4)
#: keeps the posterior noise so high (std ≈ 0.6 of the means) that the decoder learns blurry
#: colourless blobs.
IMAGE_KL_WEIGHT = 1e-6
AUDIO_KL_WEIGHT = 1e-6
#: Weight of the L1 on horizontal and vertical image differences.
EDGE_WEIGHT = 0.5
#: Weight of the image MSE: L1 alone sits for hundreds of steps on background + grey blobs
#: (~17 dB), the squared error on the few object pixels gets the colours in.
MSE_WEIGHT = 4.0
#: The fixed sample the scale factors and quality numbers are measured on.
EVAL_SEED = 20240601
EVAL_SIZE = 64
IMAGE_DEFAULTS = TrainSpec(name=IMAGE_STAGE, steps=1000, batch_size=16, lr=1e-3, warmup=50)
AUDIO_DEFAULTS = TrainSpec(name=AUDIO_STAGE, steps=500, batch_size=8, lr=1e-3, warmup=50)


class Autoencoding(nn.Module):
    """Training view of a VAE: one forward gives the reconstruction and the KL.

    (A single forward keeps distributed training correct: DDP only syncs through `forward`.)
    """

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x → (reconstruction of a posterior sample, mean KL per latent element)."""
        posterior = self.vae.encode(x).latent_dist
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        return self.vae.decode(posterior.sample()).sample, kl


def world_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """n world pictures uint8 [n,64,64,3]: each a random frame of a fresh scene's video (frame 0
    is the scene's image)."""
    frames = []
    for _ in range(n):
        scene = world.sample_scene(rng)
        frames.append(world.render_video(scene)[int(rng.integers(NUM_FRAMES))])
    return np.stack(frames)


def pixels_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [n,H,W,3] → float [n,3,H,W] in [-1, 1] (the VAE's input range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def world_fbank(audios: np.ndarray | torch.Tensor) -> torch.Tensor:
    """World waves [n, samples] → the audio VAE input [n,1,256,64], as the pipeline's front end."""
    return wav_to_fbank(torch.as_tensor(audios, dtype=torch.float32), MEL_FRAMES)


def world_sounds(rng: np.random.Generator, n: int) -> np.ndarray:
    """n world sounds float32 [n, samples] of fresh scenes."""
    return np.stack([world.render_audio(world.sample_scene(rng)) for _ in range(n)])


def _image_batch(rng: np.random.Generator, n: int) -> torch.Tensor:
    return pixels_to_tensor(world_frames(rng, n))


def _audio_batch(rng: np.random.Generator, n: int) -> torch.Tensor:
    return world_fbank(world_sounds(rng, n))


def image_loss(modules, batch: torch.Tensor, step: int):
    """L1 + MSE_WEIGHT·MSE + EDGE_WEIGHT·L1 of image gradients + IMAGE_KL_WEIGHT·KL."""
    recon, kl = modules[IMAGE_STAGE](batch)
    l1 = (recon - batch).abs().mean()
    mse = (recon - batch).pow(2).mean()
    edge = sum((recon.diff(dim=d) - batch.diff(dim=d)).abs().mean() for d in (-1, -2))
    loss = l1 + MSE_WEIGHT * mse + EDGE_WEIGHT * edge + IMAGE_KL_WEIGHT * kl
    return loss, {"l1": l1.item(), "mse": mse.item(), "edge": edge.item(), "kl": kl.item()}


def audio_loss(modules, batch: torch.Tensor, step: int):
    """L1 on the log-mel + AUDIO_KL_WEIGHT·KL."""
    recon, kl = modules[AUDIO_STAGE](batch)
    l1 = (recon - batch).abs().mean()
    loss = l1 + AUDIO_KL_WEIGHT * kl
    return loss, {"l1": l1.item(), "kl": kl.item()}


@torch.no_grad()
def latent_scale_factor(vae: AutoencoderKL, x: torch.Tensor) -> float:
    """1 / std of posterior samples of `x` (seeded), the latent diffusion scale factor."""
    z = vae.encode(x).latent_dist.sample(torch.Generator().manual_seed(0))
    return float(1.0 / z.float().std())


def save_scale_factor(run_dir: Path, stage: str, factor: float, accelerator=None) -> None:
    """Write run_dir/<stage>/scale_factor.json (main process only); refuse a non-finite one."""
    if not math.isfinite(factor):
        raise FloatingPointError(f"{stage}: latent scale factor is {factor}")
    if accelerator is None or accelerator.is_main_process:
        path = stage_dir(run_dir, stage) / "scale_factor.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"scale_factor": factor}))


@torch.no_grad()
def centre_latents_(vae: AutoencoderKL, x: torch.Tensor) -> torch.Tensor:
    """Shift the VAE's latent so its channels have mean 0 on `x`; decoding is unchanged.

    The per-channel mean of the posterior means is taken off `quant_conv`'s mean bias and put
    back through `post_quant_conv` (both 1×1), an exact reparametrisation. Returns the shift.
    Why: the audio latent's channel means (up to 1.4) dwarf their spread (0.35–0.8), and on a
    64×16 latent the sampler's pure-noise start lacks the mean every training input had, which
    the UNet can see; sampling then stays near zero-mean latents, which decode to a buzz.
    """
    channels = vae.config.latent_channels
    mean = vae.encode(x).latent_dist.mean.float().mean(dim=(0, 2, 3))
    vae.quant_conv.bias[:channels] -= mean.to(vae.quant_conv.bias.dtype)
    weight = vae.post_quant_conv.weight[:, :, 0, 0].float()
    vae.post_quant_conv.bias += (weight @ mean).to(vae.post_quant_conv.bias.dtype)
    return mean


def _finish(vae: AutoencoderKL, run_dir: Path, stage: str, eval_x: torch.Tensor,
            accelerator, centre: bool = False) -> None:
    """Centre the latent (optional), measure the scale factor; store it in the config and in
    scale_factor.json."""
    if centre:
        centre_latents_(vae, eval_x)
    factor = latent_scale_factor(vae, eval_x)
    save_scale_factor(run_dir, stage, factor, accelerator)
    vae.register_to_config(scaling_factor=factor)


def _spec(defaults: TrainSpec, steps: int | None) -> TrainSpec:
    spec = TrainSpec(**vars(defaults))
    if steps is not None:
        spec.steps = steps
        spec.warmup = min(spec.warmup, steps // 10)
    return spec


def eval_images() -> np.ndarray:
    """The fixed evaluation pictures (uint8 [EVAL_SIZE,64,64,3])."""
    return world_frames(np.random.default_rng(EVAL_SEED), EVAL_SIZE)


def eval_scenes() -> list[world.Scene]:
    """The fixed evaluation scenes."""
    rng = np.random.default_rng(EVAL_SEED)
    return [world.sample_scene(rng) for _ in range(EVAL_SIZE)]


def eval_sounds() -> np.ndarray:
    """The fixed evaluation sounds (float32 [EVAL_SIZE, samples]), of `eval_scenes`."""
    return np.stack([world.render_audio(scene) for scene in eval_scenes()])


def train_vae_image(
    official: OfficialConfig, run_dir: Path, steps: int | None = None, accelerator=None
) -> dict[str, nn.Module]:
    """Train (or load) the image VAE; its config carries the measured scaling_factor."""
    vae = model_component(IMAGE_STAGE).build(official)
    run_stage(_spec(IMAGE_DEFAULTS, steps), {IMAGE_STAGE: Autoencoding(vae)}, image_loss,
              _image_batch, run_dir, accelerator)
    vae.eval()
    _finish(vae, run_dir, IMAGE_STAGE, pixels_to_tensor(eval_images()), accelerator)
    return {IMAGE_STAGE: vae}


def train_vae_audio(
    official: OfficialConfig, run_dir: Path, steps: int | None = None, accelerator=None
) -> dict[str, nn.Module]:
    """Train (or load) the audio VAE, its latent centred (`centre_latents_`); its config carries
    the measured scaling_factor."""
    vae = model_component(AUDIO_STAGE).build(official)
    run_stage(_spec(AUDIO_DEFAULTS, steps), {AUDIO_STAGE: Autoencoding(vae)}, audio_loss,
              _audio_batch, run_dir, accelerator)
    vae.eval()
    _finish(vae, run_dir, AUDIO_STAGE, world_fbank(eval_sounds()), accelerator, centre=True)
    return {AUDIO_STAGE: vae}


@torch.no_grad()
def image_psnr(vae: AutoencoderKL, images: np.ndarray) -> float:
    """Mean PSNR (dB, uint8 pixels) of posterior-mode reconstructions, decoded as the pipeline."""
    x = pixels_to_tensor(images)
    recon = to_uint8(vae.decode(vae.encode(x).latent_dist.mode()).sample.permute(0, 2, 3, 1))
    mse = ((recon.astype(np.float64) - images) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


@torch.no_grad()
def mel_l1(vae: AutoencoderKL, sounds: np.ndarray) -> float:
    """Mean absolute log-mel error of posterior-mode reconstructions."""
    x = world_fbank(sounds)
    return float((vae.decode(vae.encode(x).latent_dist.mode()).sample - x).abs().mean())


def load_scale_factor(run_dir: Path, stage: str) -> float:
    """The scale factor a finished stage wrote (image/audio VAE or optimus)."""
    path = stage_dir(run_dir, stage) / "scale_factor.json"
    return float(json.loads(path.read_text())["scale_factor"])
