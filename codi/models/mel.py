"""AudioLDM's wave → log-mel "fbank" front end, used only to encode audio into the AudioLDM VAE.

Official chain: remove the mean, cut or zero-pad to frames*hop samples, scale the peak to 0.5,
Tacotron-style STFT magnitude (reflect-pad n_fft/2, periodic Hann, hop 160), slaney mel filterbank
(16 kHz, n_fft 1024, 64 mels, 0-8000 Hz), log(clamp(x, 1e-5)), keep the first `frames` frames.
The official STFT is a conv1d with windowed DFT bases; `torch.stft` computes the same magnitude.
"""

from __future__ import annotations

from functools import lru_cache

import torch

SAMPLE_RATE = 16000
N_FFT = 1024
HOP_LENGTH = 160
N_MELS = 64
F_MIN = 0.0
F_MAX = 8000.0
LOG_CLAMP = 1e-5
PEAK = 0.5
#: The official `int(seconds * 102.4)` frames per clip.
FRAMES_PER_SECOND = 102.4


@lru_cache(maxsize=1)
def _mel_basis() -> torch.Tensor:
    import librosa

    basis = librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX
    )
    return torch.from_numpy(basis).float()


def mel_basis() -> torch.Tensor:
    """The librosa slaney mel filterbank (64, 513), float32 (the official `fn_STFT.mel_basis`)."""
    return _mel_basis().clone()


def fbank_frames(seconds: float) -> int:
    """Number of fbank frames the official encoder uses for a clip of `seconds`."""
    return int(seconds * FRAMES_PER_SECOND)


def normalize_waveform(wav: torch.Tensor, samples: int) -> torch.Tensor:
    """(b, n) waves: remove the mean, cut or zero-pad to `samples`, scale the peak to 0.5."""
    wav = wav - wav.mean(dim=-1, keepdim=True)
    if wav.shape[-1] >= samples:
        wav = wav[..., :samples]
    else:
        wav = torch.nn.functional.pad(wav, (0, samples - wav.shape[-1]))
    return PEAK * wav / wav.abs().amax(dim=-1, keepdim=True)


def stft_magnitude(wav: torch.Tensor) -> torch.Tensor:
    """(b, n) → (b, 513, n // hop + 1) magnitudes, reflect-padded by n_fft / 2."""
    window = torch.hann_window(N_FFT, periodic=True, dtype=wav.dtype, device=wav.device)
    spec = torch.stft(
        wav, N_FFT, HOP_LENGTH, N_FFT, window, center=True, pad_mode="reflect",
        return_complex=True,
    )
    return spec.abs()


def log_mel(wav: torch.Tensor) -> torch.Tensor:
    """(b, n) waves in [-1, 1] → (b, frames, 64) natural-log mel magnitudes."""
    basis = _mel_basis().to(device=wav.device, dtype=wav.dtype)
    mel = torch.matmul(basis, stft_magnitude(wav.clamp(-1.0, 1.0)))
    return torch.log(mel.clamp(min=LOG_CLAMP)).transpose(1, 2)


def wav_to_fbank(wav: torch.Tensor, frames: int) -> torch.Tensor:
    """(b, n) 16 kHz waves → the AudioLDM VAE input (b, 1, frames, 64)."""
    mel = log_mel(normalize_waveform(wav, frames * HOP_LENGTH))  # frames + 1 frames
    return mel[:, None, :frames]
