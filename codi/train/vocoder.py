"""Stage 1: the HiFi-GAN vocoder (transformers `SpeechT5HifiGan`) from world log-mels to waves.

The vocoder learns to invert exactly the log-mel the audio VAE models (`codi.models.mel`, on the
peak-normalised wave), on random 64-frame windows of world sounds. No discriminator: the loss is
the L1 between log-mels of the output and the target plus a multi-resolution STFT loss (spectral
convergence + log-magnitude L1 at four FFT sizes), which pins down pitch and onsets, plus an L1
on the low-passed difference that keeps DC and slow drift out of the output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import SpeechT5HifiGan

from codi.models.mel import HOP_LENGTH, log_mel, normalize_waveform
from codi.models.official_config import OfficialConfig
from codi.models.registry import model_component
from codi.models.vocoder import mel_to_waveform
from codi.nano import world
from codi.nano.config import AUDIO_SAMPLES, MEL_FRAMES
from codi.nano.probes import probe_audio
from codi.nano.world import Scene
from codi.train.loop import TrainSpec, run_stage
from codi.train.vae import world_fbank, world_sounds

VOCODER_STAGE = "vocoder"
#: Frames per training window (64 frames = 0.64 s).
SEGMENT_FRAMES = 64
#: (n_fft, hop) of the multi-resolution STFT loss (4096 resolves the pitches to 4 Hz).
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512), (4096, 1024))
MEL_WEIGHT = 1.0
#: Weight of the L1 between 400-sample moving averages (below ~40 Hz) of output and target.
DRIFT_WEIGHT = 10.0
DRIFT_WINDOW, DRIFT_HOP = 400, 100
VOCODER_DEFAULTS = TrainSpec(name=VOCODER_STAGE, steps=8000, batch_size=8, lr=2e-3, warmup=50)


def _vocoder_batch(rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
    """Random windows: input log-mel (n, SEGMENT_FRAMES, 64) and the matching wave samples."""
    sounds = torch.from_numpy(world_sounds(rng, n))
    waves = normalize_waveform(sounds, MEL_FRAMES * HOP_LENGTH)
    mels = world_fbank(sounds)[:, 0]
    starts = rng.integers(0, MEL_FRAMES - SEGMENT_FRAMES + 1, size=n)
    length = SEGMENT_FRAMES * HOP_LENGTH
    return {
        "mel": torch.stack([mels[i, s:s + SEGMENT_FRAMES] for i, s in enumerate(starts)]),
        "wave": torch.stack([waves[i, s * HOP_LENGTH:s * HOP_LENGTH + length]
                             for i, s in enumerate(starts)]),
    }


def _magnitude(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    return torch.stft(wave, n_fft, hop, n_fft, window, return_complex=True).abs().clamp(min=1e-5)


def stft_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: mean over resolutions of spectral convergence + log-mag L1."""
    total = output.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        out, ref = _magnitude(output, n_fft, hop), _magnitude(target, n_fft, hop)
        convergence = torch.linalg.norm(ref - out) / torch.linalg.norm(ref)
        total = total + convergence + (out.log() - ref.log()).abs().mean()
    return total / len(STFT_RESOLUTIONS)


def drift_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 of the moving-average difference: DC and sub-40 Hz drift, which the spectral losses
    barely see (a handful of bins) and the vocoder otherwise learns to emit."""
    difference = (output - target)[:, None]
    return F.avg_pool1d(difference, DRIFT_WINDOW, DRIFT_HOP).abs().mean()


def vocoder_loss(modules, batch: dict[str, torch.Tensor], step: int):
    """MEL_WEIGHT·L1(log-mel) + multi-resolution STFT loss + DRIFT_WEIGHT·drift on one batch."""
    target = batch["wave"]
    output = modules[VOCODER_STAGE](batch["mel"])[:, :target.shape[1]]
    mel = (log_mel(output) - log_mel(target)).abs().mean()
    stft = stft_loss(output, target)
    drift = drift_loss(output, target)
    loss = MEL_WEIGHT * mel + stft + DRIFT_WEIGHT * drift
    return loss, {"mel": mel.item(), "stft": stft.item(), "drift": drift.item()}


def fresh_vocoder(official: OfficialConfig) -> SpeechT5HifiGan:
    """A vocoder to train, with PyTorch's default conv init: HiFi-GAN's N(0, 0.01) init outputs
    ~1e-9, whose spectra sit under the log floor of the losses (zero gradient)."""
    vocoder = model_component(VOCODER_STAGE).build(official)
    for module in vocoder.modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            module.reset_parameters()
    return vocoder


def train_vocoder(
    official: OfficialConfig, run_dir: Path, steps: int | None = None, accelerator=None
) -> dict[str, nn.Module]:
    """Train (or load) the vocoder."""
    vocoder = fresh_vocoder(official)
    spec = TrainSpec(**vars(VOCODER_DEFAULTS))
    if steps is not None:
        spec.steps, spec.warmup = steps, min(spec.warmup, steps // 10)
    run_stage(spec, {VOCODER_STAGE: vocoder}, vocoder_loss, _vocoder_batch, run_dir, accelerator)
    return {VOCODER_STAGE: vocoder.eval()}


def heard_objects(waves: np.ndarray) -> list[set[tuple[str, str]]]:
    """(colour, shape) pairs the world's audio probe hears in each wave [n, samples]."""
    return [{(o.colour, o.shape) for o in probe_audio(w).objects} for w in waves]


@torch.no_grad()
def vocoder_quality(vocoder: SpeechT5HifiGan, scenes: list[Scene]) -> dict[str, float]:
    """Whole clips of `scenes` through the pipeline's `mel_to_waveform`: log-mel L1 of the result
    against its input, and how often the audio probe hears exactly the scene's colours (pitch)
    and colours with shapes (pitch and timbre) in it, next to the same on the original sounds."""
    sounds = np.stack([world.render_audio(scene) for scene in scenes])
    mels = world_fbank(sounds)
    waves = mel_to_waveform(vocoder, mels)[:, 0, :AUDIO_SAMPLES]
    truth = [{(o.colour, o.shape) for o in scene.objects} for scene in scenes]
    quality = {"mel_l1": float((log_mel(waves)[:, :MEL_FRAMES] - mels[:, 0]).abs().mean())}
    for name, audio in (("vocoded", waves.numpy()), ("original", sounds)):
        heard = heard_objects(audio)
        quality[f"{name}_pitch"] = float(np.mean(
            [{c for c, _ in h} == {c for c, _ in t} for h, t in zip(heard, truth, strict=True)]))
        quality[f"{name}_pitch_timbre"] = float(np.mean(
            [h == t for h, t in zip(heard, truth, strict=True)]))
    return quality
