"""CLAP's audio front end: 16 kHz waveform → 48 kHz, fixed 10 s length, log-mel `[B,1,1001,64]`.

Written in torch because the official chain uses torchaudio (resampling) and torchlibrosa
(STFT as a DFT convolution, librosa mel matrix), neither of which is a dependency here. Each step
computes what those libraries compute, in the same float32 arithmetic: `clap_log_mel` upcasts a
half-precision waveform (and turns autocast off), because the power spectrum of a loud clip
exceeds fp16's 65504 and the sinc kernel and log lose most of their digits in 16 bits.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Literal

import librosa
import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 48_000
INPUT_SAMPLE_RATE = 16_000
MAX_SAMPLES = 480_000  # 10 s at 48 kHz
N_FFT = 1024
HOP = 480
N_MELS = 64
F_MIN = 50.0
F_MAX = 14_000.0
AMIN = 1e-10

#: "center" and "start" crop long audio deterministically; "official" reproduces the official
#: NumPy-RNG crop, draws included.
Crop = Literal["center", "start", "official"]


def _sinc_kernel(
    orig: int, new: int, width_zc: int, rolloff: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, int]:
    """torchaudio's Hann-windowed sinc kernel `[new, 1, taps]` for reduced rates orig→new."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zc * orig / base)
    idx = torch.arange(-width, width + orig, dtype=dtype, device=device)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new + idx
    t = (t * base).clamp_(-width_zc, width_zc)
    window = torch.cos(t * math.pi / width_zc / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=dtype, device=device), t.sin() / t)
    return kernel * (window * (base / orig)), width


def resample(
    wave: torch.Tensor,
    orig_freq: int = INPUT_SAMPLE_RATE,
    new_freq: int = SAMPLE_RATE,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """`torchaudio.functional.resample` with its defaults (sinc_interp_hann), over the last axis."""
    if orig_freq == new_freq:
        return wave
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    kernel, width = _sinc_kernel(orig, new, lowpass_filter_width, rolloff, wave.dtype, wave.device)
    shape = wave.shape
    flat = F.pad(wave.reshape(-1, shape[-1]), (width, width + orig))
    out = F.conv1d(flat[:, None], kernel, stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[:, : math.ceil(new * shape[-1] / orig)]
    return out.reshape(*shape[:-1], out.shape[-1])


def _official_fusion_draws(length: int, rng: Any) -> None:
    """The three draws the official code makes for its unused "fusion" chunks (consumes RNG)."""
    chunk_frames = MAX_SAMPLES // HOP + 1
    total_frames = length // HOP + 1
    if total_frames == chunk_frames:
        return
    ranges = np.array_split(np.arange(0, total_frames - chunk_frames + 1), 3)
    for part in ranges:
        rng.choice(part if len(part) else np.array([0]))


def crop_offset(
    length: int, crop: Crop = "center", rng: np.random.RandomState | None = None
) -> int:
    """Start of the 10 s window cut from `length` (> MAX_SAMPLES) samples at 48 kHz.

    crop="official" draws from `rng` exactly as the official code does (default: NumPy's global
    legacy RNG, as the official code uses), so `np.random.seed(s)` reproduces its crop.
    """
    overflow = length - MAX_SAMPLES
    if crop == "center":
        return overflow // 2
    if crop == "start":
        return 0
    if crop == "official":
        draw = rng if rng is not None else np.random  # the module's functions: the global RNG
        _official_fusion_draws(length, draw)
        return int(draw.randint(0, overflow + 1))
    raise ValueError(f"unknown crop {crop!r}")


def fit_length(
    wave: torch.Tensor, crop: Crop = "center", rng: np.random.RandomState | None = None
) -> torch.Tensor:
    """One 1-D 48 kHz waveform to exactly 10 s: crop if longer, else tile and zero-pad."""
    length = wave.shape[-1]
    if length > MAX_SAMPLES:
        start = crop_offset(length, crop, rng)
        return wave[start : start + MAX_SAMPLES]
    if length < MAX_SAMPLES:
        wave = wave.repeat(MAX_SAMPLES // length)
        wave = F.pad(wave, (0, MAX_SAMPLES - wave.shape[-1]))
    return wave


def prepare_waveform(
    wave_16k: torch.Tensor, crop: Crop = "center", rng: np.random.RandomState | None = None
) -> torch.Tensor:
    """`[T]`, `[B,T]` or `[B,1,T]` waveforms at 16 kHz → `[B, 480000]` at 48 kHz, item by item."""
    batch = 1 if wave_16k.dim() == 1 else wave_16k.shape[0]
    wave = resample(wave_16k.reshape(batch, -1))
    return torch.stack([fit_length(item, crop, rng) for item in wave])


@lru_cache(maxsize=4)
def _dft_weights(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torchlibrosa's STFT conv weights (real, imag) `[n_fft//2+1, 1, n_fft]`: DFT × Hann.

    The DFT matrix is built as torchlibrosa builds it (powers of one complex root of unity), whose
    last-bit rounding differs from exact cos/sin; this keeps the log-mel bitwise equal.
    """
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    dft = np.power(np.exp(-2j * np.pi / n_fft), k * n) * window[None, :]
    real = torch.from_numpy(np.real(dft).astype(np.float32))[:, None, :]
    imag = torch.from_numpy(np.imag(dft).astype(np.float32))[:, None, :]
    return real, imag


@lru_cache(maxsize=4)
def _mel_weights(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """librosa's slaney mel matrix, transposed `[n_fft//2+1, n_mels]` as torchlibrosa holds it."""
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(np.ascontiguousarray(mel.T, dtype=np.float32))


def power_spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """torchlibrosa `Spectrogram` (centred, reflect-padded, power 2): `[B,L]` → `[B,1,T,513]`."""
    real_w, imag_w = (w.to(wave.device, wave.dtype) for w in _dft_weights(N_FFT))
    x = F.pad(wave[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
    real = F.conv1d(x, real_w, stride=HOP)[:, None].transpose(2, 3)
    imag = F.conv1d(x, imag_w, stride=HOP)[:, None].transpose(2, 3)
    return real**2 + imag**2


def log_mel(wave_48k: torch.Tensor) -> torch.Tensor:
    """torchlibrosa `LogmelFilterBank` (ref 1, amin 1e-10, no top_db): `[B,L]` → `[B,1,T,64]`."""
    mel_w = _mel_weights(SAMPLE_RATE, N_FFT, N_MELS, F_MIN, F_MAX)
    mel_w = mel_w.to(wave_48k.device, wave_48k.dtype)
    mel = torch.matmul(power_spectrogram(wave_48k), mel_w)
    return 10.0 * torch.log10(torch.clamp(mel, min=AMIN))


def clap_log_mel(
    wave_16k: torch.Tensor, crop: Crop = "center", rng: np.random.RandomState | None = None
) -> torch.Tensor:
    """The whole CLAP front end: 16 kHz waveforms `[B,(1,)T]` → float32 log-mel
    `[B,1,1001,64]`, computed in float32 whatever the input dtype (see the module docstring)."""
    with torch.autocast(wave_16k.device.type, enabled=False):
        return log_mel(prepare_waveform(wave_16k.float(), crop, rng))
