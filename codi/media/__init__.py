"""Media I/O for CoDi Studio: decode user images/audio/video, write generated outputs.

Knows nothing about models; CoDi-specific preprocessing (crops, CLIP/CLAP features) lives in the
pipeline. Every error a user can cause is raised as `codi.errors.CoDiUserError`.
"""

from codi.media.audio import LoadedAudio, fit_to_length, load_audio
from codi.media.image import LoadedImage, load_image
from codi.media.limits import DEFAULT_LIMITS, MediaLimits
from codi.media.video import LoadedVideo, load_video
from codi.media.writers import (
    Mp4Info,
    read_png_metadata,
    save_gif,
    save_mp4,
    save_png,
    save_text,
    save_wav,
    sidecar_path,
)

__all__ = [
    "DEFAULT_LIMITS",
    "LoadedAudio",
    "LoadedImage",
    "LoadedVideo",
    "MediaLimits",
    "Mp4Info",
    "fit_to_length",
    "load_audio",
    "load_image",
    "load_video",
    "read_png_metadata",
    "save_gif",
    "save_mp4",
    "save_png",
    "save_text",
    "save_wav",
    "sidecar_path",
]
