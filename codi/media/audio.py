"""Decoding user audio into a mono float32 waveform at a target sample rate.

Decisions:
- WAV/FLAC/OGG/MP3 (and anything else libsndfile reads) are decoded with soundfile; every other
  format (m4a/AAC, opus, audio tracks of MP4/MOV/MKV/WebM, ...) with the ffmpeg binary bundled in
  imageio-ffmpeg, into a temporary float WAV at the native rate and channel count, so both paths
  share the same mixdown and resampling below.
- Mono mixdown is the mean over channels (as the official CoDi demo); resampling uses soxr "HQ"
  (the official code uses torchaudio's windowed-sinc resampler: tiny numeric differences).
- NaN/inf samples are refused (they mean a damaged float file); a float file whose peak exceeds 1
  is scaled down by its peak (with a notice) so nothing is clipped; the result is within [-1, 1].
- Empty audio is refused. Too-long audio keeps its first `limits.max_audio_seconds` (notice) or is
  refused, per `limits.too_long`.
- Only decoding happens here: CoDi's 10.23 s truncation/padding and CLAP features are the
  pipeline's job (`fit_to_length` is the deterministic helper for it).
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr

from codi.errors import CoDiUserError
from codi.media._source import as_path, check_file_source
from codi.media.ffmpeg import probe, run_ffmpeg
from codi.media.limits import DEFAULT_LIMITS, MediaLimits, enforce_duration

AudioSource = str | os.PathLike | bytes | tuple[int, np.ndarray]
LENGTH_SLACK_S = 0.05  # decoders may overshoot a requested cut by a codec frame; crop silently


@dataclass
class LoadedAudio:
    """A decoded waveform: float32 mono in [-1, 1] at `sample_rate`; `notices` are for the user."""

    wave: np.ndarray
    sample_rate: int
    duration_s: float
    notices: list[str] = field(default_factory=list)
    source_info: dict[str, Any] = field(default_factory=dict)


def _int_to_float(array: np.ndarray) -> np.ndarray:
    """PCM integers → float32 in [-1, 1); floats pass through as float32."""
    if array.dtype == np.uint8:
        return (array.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / float(-np.iinfo(array.dtype).min)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise CoDiUserError(f"Unsupported audio sample type {array.dtype}; use int16 or float32.")


def _read_soundfile(
    src: str | os.PathLike | bytes, label: str, limits: MediaLimits, notices: list[str]
) -> tuple[np.ndarray, int] | None:
    """Decode with libsndfile; None when libsndfile cannot open the format."""
    opener = (lambda: io.BytesIO(src)) if isinstance(src, bytes) else (lambda: src)
    try:
        info = sf.info(opener())
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    if info.samplerate <= 0 or info.frames <= 0:
        raise CoDiUserError(f"The audio {label} contains no samples. Choose another recording.")
    keep_s = enforce_duration(
        info.frames / info.samplerate, limits.max_audio_seconds, "audio", label, limits, notices
    )
    try:
        data, rate = sf.read(
            opener(), frames=int(round(keep_s * info.samplerate)), dtype="float32", always_2d=True
        )
    except (sf.LibsndfileError, RuntimeError) as err:
        raise CoDiUserError(
            f"The audio {label} is damaged and cannot be decoded. Re-export it."
        ) from err
    return data, rate


def decode_audio_track(path: Path, seconds: float, label: str) -> tuple[np.ndarray, int]:
    """First audio stream of `path` (its first `seconds`) as [n, channels] float32 and its rate."""
    with tempfile.TemporaryDirectory(prefix="codi-audio-") as tmp:
        out = Path(tmp) / "decoded.wav"
        run_ffmpeg(
            [
                "-i",
                str(path),
                "-t",
                f"{seconds:.6f}",
                "-map",
                "0:a:0",
                "-vn",
                "-c:a",
                "pcm_f32le",
                str(out),
            ],
            f"the audio {label}",
        )
        data, rate = sf.read(out, dtype="float32", always_2d=True)
    return data, rate


def _read_ffmpeg(
    src: str | os.PathLike | bytes, label: str, limits: MediaLimits, notices: list[str]
) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of anything ffmpeg reads (m4a, aac, mp4, webm, ...)."""
    with as_path(src) as path:
        found = probe(path, label)
        if not found.has_audio:
            raise CoDiUserError(f"The file {label} has no audio track. Choose a file with sound.")
        if found.duration_s is None:
            seconds = limits.max_audio_seconds + 1.0
        else:
            seconds = enforce_duration(
                found.duration_s, limits.max_audio_seconds, "audio", label, limits, notices
            )
        return decode_audio_track(path, seconds, label)


def finish_audio(
    data: np.ndarray,
    rate: int,
    target_sr: int,
    label: str,
    limits: MediaLimits,
    notices: list[str],
    info: dict[str, Any],
) -> LoadedAudio:
    """[n, channels] float32 at `rate` → validated mono float32 at `target_sr`."""
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise CoDiUserError(f"The audio {label} contains no samples. Choose another recording.")
    if not np.isfinite(data).all():
        raise CoDiUserError(
            f"The audio {label} contains NaN or infinite samples (a damaged float file). "
            "Re-export it as 16-bit WAV or FLAC."
        )
    seconds = data.shape[0] / rate
    if seconds > limits.max_audio_seconds + LENGTH_SLACK_S:
        seconds = enforce_duration(
            seconds, limits.max_audio_seconds, "audio", label, limits, notices
        )
    data = data[: int(round(min(seconds, limits.max_audio_seconds) * rate))]
    info.update(channels=int(data.shape[1]), source_sample_rate=int(rate))
    wave = data.mean(axis=1, dtype=np.float32)
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        wave = wave / peak
        notices.append(f"The audio peaks at {peak:.2f} (above full scale); it was scaled down.")
    if rate != target_sr:
        wave = soxr.resample(wave, rate, target_sr, quality="HQ")
    wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
    return LoadedAudio(
        wave=wave,
        sample_rate=target_sr,
        duration_s=wave.shape[0] / target_sr,
        notices=notices,
        source_info=info,
    )


def load_audio(
    src: AudioSource, target_sr: int = 16000, limits: MediaLimits = DEFAULT_LIMITS
) -> LoadedAudio:
    """Decode a path, bytes or a `(sample_rate, array)` pair (gradio's numpy format, [n] or
    [n, channels], int or float) into mono float32 at `target_sr`.

    Raises CoDiUserError for missing, empty, oversized, corrupt or soundless inputs, NaN/inf
    samples, and too-long audio under the "refuse" policy.
    """
    notices: list[str] = []
    if isinstance(src, tuple):
        if len(src) != 2 or not isinstance(src[1], np.ndarray) or int(src[0]) <= 0:
            raise CoDiUserError("In-memory audio must be a (sample_rate, numpy array) pair.")
        return finish_audio(
            _int_to_float(src[1]),
            int(src[0]),
            target_sr,
            "you passed",
            limits,
            notices,
            {"format": "array"},
        )
    if not isinstance(src, (str, os.PathLike, bytes)):
        raise CoDiUserError(f"Cannot read audio from a {type(src).__name__}; give a file path.")
    label = check_file_source(src, limits, "audio")
    decoded = _read_soundfile(src, label, limits, notices)
    info: dict[str, Any] = {"decoder": "soundfile"}
    if decoded is None:
        decoded = _read_ffmpeg(src, label, limits, notices)
        info["decoder"] = "ffmpeg"
    return finish_audio(*decoded, target_sr, label, limits, notices, info)


def fit_to_length(
    wave: np.ndarray, n: int, mode: Literal["start", "center"] = "start"
) -> np.ndarray:
    """Crop or zero-pad the last axis to exactly `n` samples.

    "start" keeps the beginning and pads at the end; "center" crops/pads equally on both sides
    (the extra sample, if any, goes to the end).
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if mode not in ("start", "center"):
        raise ValueError(f"mode must be 'start' or 'center', got {mode!r}")
    length = wave.shape[-1]
    if length >= n:
        start = (length - n) // 2 if mode == "center" else 0
        return wave[..., start : start + n].copy()
    before = (n - length) // 2 if mode == "center" else 0
    widths = [(0, 0)] * (wave.ndim - 1) + [(before, n - length - before)]
    return np.pad(wave, widths)
