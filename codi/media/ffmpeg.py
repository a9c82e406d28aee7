"""Running the ffmpeg binary bundled with imageio-ffmpeg (no system ffmpeg is needed)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from codi.errors import CoDiUserError

TIMEOUT_S = 600


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped in the imageio-ffmpeg wheel."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        raise RuntimeError(
            "ffmpeg is unavailable: install the 'imageio-ffmpeg' package "
            "(pip install imageio-ffmpeg)."
        ) from err


def _last_error_line(stderr: bytes) -> str:
    """The last stderr line, without a leading "<path>: " (paths may be temporary files)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return re.sub(r"^\S*/\S*:\s*", "", lines[-1]) if lines else "no details"


def run_ffmpeg(
    args: list[str], what: str, stdin: bytes | None = None, user_input: bool = True
) -> bytes:
    """Run `ffmpeg <args>` and return stdout.

    Failures become a CoDiUserError about decoding `what` when `user_input`, else a RuntimeError
    (our own encoding failed: a bug or a broken install, not the user's fault).
    """
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    if stdin is not None:
        cmd.remove("-nostdin")
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise CoDiUserError(
            f"Processing {what} took longer than {TIMEOUT_S} s. Use a shorter file."
        ) from err
    if proc.returncode != 0 and not user_input:
        raise RuntimeError(
            f"ffmpeg failed writing {what}: {proc.stderr.decode('utf-8', 'replace')}"
        )
    if proc.returncode != 0:
        raise CoDiUserError(
            f"Could not decode {what} (ffmpeg: {_last_error_line(proc.stderr)}). "
            "The file may be damaged or in an unsupported format; re-export it as MP4, WAV or PNG."
        )
    return proc.stdout


@dataclass(frozen=True)
class MediaProbe:
    """What ffmpeg reports about a file's container and streams."""

    duration_s: float | None
    has_video: bool
    has_audio: bool
    fps: float | None


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_FPS = re.compile(r"([\d.]+)\s*fps")


def probe(path: str | Path, label: str | None = None) -> MediaProbe:
    """Container duration, presence of video/audio streams and the video frame rate (no decoding).

    Raises CoDiUserError when ffmpeg cannot open the file at all.
    """
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    text = proc.stderr.decode("utf-8", "replace")
    streams = [ln for ln in text.splitlines() if ln.strip().startswith("Stream #")]
    if not streams:
        raise CoDiUserError(
            f"Could not read {label or repr(Path(path).name)} "
            f"(ffmpeg: {_last_error_line(proc.stderr)}). "
            "The file may be damaged or not a media file."
        )
    match = _DURATION.search(text)
    duration = None
    if match:
        h, m, s = match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    video = [ln for ln in streams if "Video:" in ln and "attached pic" not in ln]
    fps_match = _FPS.search(video[0]) if video else None
    return MediaProbe(
        duration_s=duration,
        has_video=bool(video),
        has_audio=any("Audio:" in ln for ln in streams),
        fps=float(fps_match.group(1)) if fps_match else None,
    )


def count_video_packets(path: str | Path, label: str) -> int | None:
    """Number of frames (packets) of the first video stream, counted by stream copy (fast, no
    decoding); None when ffmpeg reports no count."""
    out = run_ffmpeg(
        [
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "null",
            "-nostats",
            "-progress",
            "pipe:1",
            "-",
        ],
        label,
    )
    counts = re.findall(rb"^frame=(\d+)", out, flags=re.MULTILINE)
    return int(counts[-1]) if counts else None
