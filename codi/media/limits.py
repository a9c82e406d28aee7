"""Resource limits applied to every decoded input, and what to do with media that is too long."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codi.errors import CoDiUserError

TooLongPolicy = Literal["crop", "refuse"]


@dataclass(frozen=True)
class MediaLimits:
    """Limits for decoding user media.

    max_image_pixels: width × height above which an image (or a video frame) is refused before its
        pixels are decoded (decompression-bomb guard). Pillow's own guard still refuses anything
        above 2 × `PIL.Image.MAX_IMAGE_PIXELS` (≈179 MP), so values above that have no effect.
    max_file_bytes: files (or byte strings) larger than this are refused before reading.
    max_audio_seconds / max_video_seconds: the longest audio / video accepted.
    too_long: "crop" keeps the first `max_*_seconds` and adds a notice; "refuse" raises.
    """

    max_image_pixels: int = 50_000_000
    max_file_bytes: int = 500 * 1024 * 1024
    max_audio_seconds: float = 60.0
    max_video_seconds: float = 60.0
    too_long: TooLongPolicy = "crop"

    def __post_init__(self) -> None:
        for name in (
            "max_image_pixels",
            "max_file_bytes",
            "max_audio_seconds",
            "max_video_seconds",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"MediaLimits.{name} must be positive, got {getattr(self, name)!r}"
                )
        if self.too_long not in ("crop", "refuse"):
            raise ValueError(
                f"MediaLimits.too_long must be 'crop' or 'refuse', got {self.too_long!r}"
            )


DEFAULT_LIMITS = MediaLimits()


def enforce_duration(
    duration_s: float, max_s: float, kind: str, label: str, limits: MediaLimits, notices: list[str]
) -> float:
    """Apply the too-long policy; returns how many seconds to keep (from the start).

    Raises CoDiUserError under the "refuse" policy; under "crop" appends a notice.
    """
    if duration_s <= max_s:
        return duration_s
    if limits.too_long == "refuse":
        raise CoDiUserError(
            f"The {kind} {label} is {duration_s:.1f} s long; the limit is {max_s:g} s. "
            f"Trim it to at most {max_s:g} s and try again."
        )
    notices.append(f"The {kind} is {duration_s:.1f} s long; only its first {max_s:g} s are used.")
    return max_s
