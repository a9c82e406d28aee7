"""Writing generated media: PNG (metadata in a tEXt chunk), WAV, MP4, GIF and text.

Metadata is JSON. PNGs embed it under the tEXt key "codi"; WAV/MP4/GIF/TXT get a sidecar file named
after the whole output file name plus ".json" (`out.wav` → `out.wav.json`, so `out.wav` and
`out.mp4` never share one); MP4s also carry it in their `comment` tag.

MP4 length reconciliation (CoDi's joint video is 8 frames at 4 fps = 2 s, its audio 10.24 s):
- "trim_audio" (default): the audio is cut (or padded with silence) to the video's duration F/fps.
- "loop_video": the frames repeat, in order, until they cover the audio (⌈audio_s·fps⌉ frames);
  the audio is then padded with silence to that whole number of frames.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from codi.media.audio import fit_to_length
from codi.media.ffmpeg import run_ffmpeg

PNG_KEY = "codi"
MP4_AUDIO_RATE = 44100  # AAC is resampled to a rate every browser and player handles
Reconcile = Literal["trim_audio", "loop_video"]
Frames = np.ndarray | Sequence[Image.Image | np.ndarray]


def _json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=True, sort_keys=True, default=str)


def _prepare(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the JSON metadata of a WAV/MP4/GIF/TXT output lives: `<file name>.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _write_sidecar(path: Path, metadata: dict[str, Any] | None) -> None:
    if metadata is not None:
        sidecar_path(path).write_text(_json(metadata) + "\n", encoding="utf-8")


def save_png(
    image: Image.Image, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> Path:
    """Save an image as PNG, with `metadata` as JSON in the tEXt chunk "codi"."""
    path = _prepare(path)
    info = PngInfo()
    if metadata is not None:
        info.add_text(PNG_KEY, _json(metadata))
    image.save(path, format="PNG", pnginfo=info)
    return path


def read_png_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata `save_png` embedded ({} when the PNG has none)."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}).get(PNG_KEY)
    return json.loads(text) if text else {}


def _mono_or_channels(wave: Any) -> np.ndarray:
    """Any array-like of samples → float32 [n] or [n, channels], finite and within [-1, 1]."""
    wave = np.squeeze(np.asarray(wave, dtype=np.float32))
    if wave.ndim not in (1, 2) or wave.size == 0:
        raise ValueError(f"audio must be [n] or [n, channels] samples, got shape {wave.shape}")
    return np.clip(np.nan_to_num(wave, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


def save_wav(
    wave: Any, sample_rate: int, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> Path:
    """Save samples ([n] or [n, channels] floats, clipped to [-1, 1]) as 16-bit PCM WAV, plus the
    JSON sidecar."""
    path = _prepare(path)
    sf.write(path, _mono_or_channels(wave), int(sample_rate), subtype="PCM_16", format="WAV")
    _write_sidecar(path, metadata)
    return path


def save_text(text: str, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Save text as UTF-8 (with a trailing newline), plus the JSON sidecar."""
    path = _prepare(path)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    _write_sidecar(path, metadata)
    return path


def _stack_frames(frames: Frames) -> np.ndarray:
    """PIL images or arrays → uint8 [F, H, W, 3]."""
    if not isinstance(frames, np.ndarray):
        frames = np.stack(
            [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f) for f in frames]
        )
    if (
        frames.ndim != 4
        or frames.shape[-1] != 3
        or frames.shape[0] == 0
        or frames.dtype != np.uint8
    ):
        raise ValueError(
            f"frames must be uint8 [F, H, W, 3] with F ≥ 1, got {frames.dtype} {frames.shape}"
        )
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 yuv420p needs even sizes: replicate the last row/column where a side is odd."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frames)


@dataclass(frozen=True)
class Mp4Info:
    """What `save_mp4` wrote. `reconcile` is None when there is no audio."""

    path: Path
    frames: int
    fps: float
    duration_s: float
    has_audio: bool
    reconcile: Reconcile | None
    audio_duration_s: float | None


def _reconcile(
    frames: np.ndarray, fps: float, audio: np.ndarray, rate: int, mode: Reconcile
) -> tuple[np.ndarray, np.ndarray]:
    if mode == "loop_video":
        count = max(frames.shape[0], math.ceil(audio.shape[0] / rate * fps - 1e-9))
        frames = frames[np.arange(count) % frames.shape[0]]
    elif mode != "trim_audio":
        raise ValueError(f"reconcile must be 'trim_audio' or 'loop_video', got {mode!r}")
    return frames, fit_to_length(audio, round(frames.shape[0] / fps * rate), mode="start")


def save_mp4(
    frames: Frames,
    fps: float,
    path: str | os.PathLike,
    audio: Any = None,
    audio_rate: int = 16000,
    reconcile: Reconcile = "trim_audio",
    metadata: dict[str, Any] | None = None,
) -> Mp4Info:
    """Encode frames (uint8 [F, H, W, 3] or PIL images) as a browser-playable MP4: H.264 yuv420p,
    even dimensions, `+faststart`; `audio` (mono or [n, channels] floats at `audio_rate`) is muxed
    as AAC after length reconciliation (see module docstring). Writes the JSON sidecar."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = _prepare(path)
    video = _even(_stack_frames(frames))
    rate = Fraction(fps).limit_denominator(1001)
    wave = None if audio is None else _mono_or_channels(audio)
    if wave is not None:
        video, wave = _reconcile(video, float(fps), wave, int(audio_rate), reconcile)
    count, height, width = video.shape[:3]
    args = [
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(rate),
        "-i",
        "pipe:0",
    ]
    outputs = [
        "-map",
        "0:v:0",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "18",
        "-preset",
        "medium",
        "-movflags",
        "+faststart",
    ]
    if metadata is not None:
        outputs += ["-metadata", f"comment={_json(metadata)}"]
    with tempfile.TemporaryDirectory(prefix="codi-mp4-") as tmp:
        if wave is not None:
            track = Path(tmp) / "audio.wav"
            sf.write(track, wave, int(audio_rate), subtype="PCM_16", format="WAV")
            args += ["-i", str(track)]
            outputs += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "128k", "-ar", str(MP4_AUDIO_RATE)]
        run_ffmpeg(
            [*args, *outputs, str(path)], f"'{path.name}'", stdin=video.tobytes(), user_input=False
        )
    _write_sidecar(path, metadata)
    return Mp4Info(
        path=path,
        frames=count,
        fps=float(fps),
        duration_s=count / float(fps),
        has_audio=wave is not None,
        reconcile=None if wave is None else reconcile,
        audio_duration_s=None if wave is None else wave.shape[0] / int(audio_rate),
    )


def save_gif(
    frames: Frames, fps: float, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> Path:
    """Save frames as a looping GIF at `fps` (the official demo's 4 fps → 250 ms per frame)."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = _prepare(path)
    images = [Image.fromarray(frame) for frame in _stack_frames(frames)]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    _write_sidecar(path, metadata)
    return path
