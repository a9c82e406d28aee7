"""Decoding user videos into a few uint8 RGB frames plus the clip's own audio track.

Frame sampling rule: the clip (or its first `limits.max_video_seconds`, where N is then
estimated from the clip's average frame rate) has N frames; frame i of F
is source frame ⌊(i + ½)·N / F⌋, the centre of the i-th of F equal segments. This covers the whole
clip deterministically. (The official CoDi helper ignores its arguments and takes 4 frames by
`linspace` over a *random* 4-second window; CoDi Studio samples the whole clip instead.)
When N < F some frames repeat (with a notice). Only decoding happens here: the square crop, 256
resize and CLIP preprocessing are the pipeline's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codi.errors import CoDiUserError
from codi.media._source import as_path, check_file_source
from codi.media.audio import LoadedAudio, decode_audio_track, finish_audio
from codi.media.ffmpeg import count_video_packets, probe
from codi.media.limits import DEFAULT_LIMITS, MediaLimits, enforce_duration

VideoSource = str | os.PathLike | bytes


@dataclass
class LoadedVideo:
    """`frames` is uint8 [F, H, W, 3]; `fps` the source frame rate; `duration_s` the span the
    frames were sampled from; `audio` the clip's own sound (None when it has none)."""

    frames: np.ndarray
    fps: float
    duration_s: float
    audio: LoadedAudio | None = None
    notices: list[str] = field(default_factory=list)
    source_info: dict[str, Any] = field(default_factory=dict)


def sample_indices(total: int, count: int) -> np.ndarray:
    """Indices of `count` frames out of `total`: the centres of `count` equal segments."""
    if total <= 0 or count <= 0:
        raise ValueError(f"total and count must be positive, got {total}, {count}")
    return np.minimum(
        np.floor((np.arange(count) + 0.5) * total / count).astype(np.int64), total - 1
    )


def _read_selected(
    path: str, seconds: float, wanted: np.ndarray, label: str, limits: MediaLimits
) -> tuple[np.ndarray, dict[str, Any], int]:
    """Stream-decode the window, keeping frames at `wanted`; returns frames, meta, count seen."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(path, output_params=["-t", f"{seconds:.6f}"])
    try:
        meta = next(reader)
        width, height = meta["size"]
        if width * height > limits.max_image_pixels:
            raise CoDiUserError(
                f"The video {label} is {width}×{height}; the limit is "
                f"{limits.max_image_pixels / 1e6:.0f} MP per frame. Downscale it and try again."
            )
        kept: dict[int, np.ndarray] = {}
        last, seen = None, 0
        targets = set(wanted.tolist())
        for index, raw in enumerate(reader):
            last = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
            seen = index + 1
            if index in targets:
                kept[index] = last
            if index >= wanted.max():
                break
    except CoDiUserError:
        raise
    except (RuntimeError, OSError, StopIteration, ValueError, KeyError) as err:
        raise CoDiUserError(
            f"The video {label} is damaged or in an unsupported format. "
            "Re-export it as MP4 (H.264)."
        ) from err
    finally:
        reader.close()
    if last is None:
        raise CoDiUserError(f"The video {label} contains no decodable frames. Re-export it.")
    frames = np.stack([kept.get(i, last) for i in wanted.tolist()])
    return frames, meta, seen


def load_video(
    src: VideoSource,
    num_frames: int = 8,
    limits: MediaLimits = DEFAULT_LIMITS,
    audio_sr: int = 16000,
) -> LoadedVideo:
    """Decode `num_frames` frames sampled over the clip, plus its audio track resampled to
    `audio_sr` (mono). Raises CoDiUserError for missing, oversized, corrupt or frameless files, and
    for too-long clips under the "refuse" policy (under "crop" the first `max_video_seconds` are
    used)."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if not isinstance(src, (str, os.PathLike, bytes)):
        raise CoDiUserError(f"Cannot read a video from a {type(src).__name__}; give a file path.")
    label = check_file_source(src, limits, "video")
    notices: list[str] = []
    with as_path(src) as path:
        found = probe(path, label)
        if not found.has_video:
            raise CoDiUserError(
                f"The file {label} has no video stream. Choose a video file (MP4, WebM, MOV)."
            )
        if found.duration_s is None:
            seconds = limits.max_video_seconds
        else:
            seconds = enforce_duration(
                found.duration_s, limits.max_video_seconds, "video", label, limits, notices
            )
        total = _frames_in_window(path, seconds, found.duration_s, found.fps, label)
        wanted = sample_indices(total, num_frames)
        frames, meta, seen = _read_selected(str(path), seconds, wanted, label, limits)
        if total < num_frames:
            notices.append(f"The video has only {total} frames; some of the {num_frames} repeat.")
        audio = (
            _load_track(path, seconds, label, audio_sr, limits, notices)
            if found.has_audio
            else None
        )
    fps = float(meta.get("fps") or found.fps or 0.0)
    info = {
        "source_frames": total,
        "decoded_frames": seen,
        "frame_indices": wanted.tolist(),
        "size": tuple(meta["size"]),
        "codec": meta.get("codec"),
        "source_duration_s": found.duration_s,
    }
    duration = min(seconds, found.duration_s) if found.duration_s else (total / fps if fps else 0.0)
    return LoadedVideo(
        frames=frames,
        fps=fps,
        duration_s=float(duration),
        audio=audio,
        notices=notices,
        source_info=info,
    )


def _frames_in_window(
    path: Path, seconds: float, duration_s: float | None, fps: float | None, label: str
) -> int:
    """Frames in the first `seconds`: the exact packet count for a whole clip, else the count
    scaled by seconds/duration (stream-copy counts with a cut are off by B-frame reordering)."""
    packets = count_video_packets(path, label)
    if packets and duration_s:
        return max(1, min(packets, round(packets * seconds / duration_s)))
    return packets or max(1, round(seconds * (fps or 1)))


def _load_track(
    path: Path,
    seconds: float,
    label: str,
    sample_rate: int,
    limits: MediaLimits,
    notices: list[str],
) -> LoadedAudio | None:
    """The clip's audio over the same window; a broken or empty track only yields a notice."""
    try:
        data, rate = decode_audio_track(path, seconds, label)
        return finish_audio(data, rate, sample_rate, label, limits, [], {"decoder": "ffmpeg"})
    except CoDiUserError as err:
        notices.append(f"The video's sound track was ignored: {err}")
        return None
