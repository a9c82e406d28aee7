"""Decoding user images into plain 8-bit RGB PIL images.

Decisions:
- Transparency (RGBA, LA, PA, P/L/RGB with a transparent colour) is composited onto **white**:
  transparent areas are usually background, and CoDi's image encoder has no alpha channel.
- 16-bit images (I;16*, I) are scaled to 8 bit by value·255/65535 (rounded), not truncated.
  32-bit float images (F) are read as [0, 1] when their maximum is ≤ 1, else as [0, 255].
- CMYK, YCbCr, LAB, HSV, 1-bit and palette images go through Pillow's RGB conversion (embedded
  ICC profiles are not applied).
- Animated GIF/WebP/APNG: the first frame is used (with a notice).
- EXIF orientation is applied, so the pixels are upright as a viewer shows them.
- Only decoding happens here: CoDi's crop/resize/CLIP preprocessing belongs to the pipeline.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from codi.errors import CoDiUserError
from codi.media._source import check_file_source
from codi.media.limits import DEFAULT_LIMITS, MediaLimits

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray
SMALL_SIDE = 64
ORIENTATION_TAG = 0x0112
_DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)


@dataclass
class LoadedImage:
    """A decoded image: `image` is an RGB PIL image; `notices` are messages for the user."""

    image: Image.Image
    notices: list[str] = field(default_factory=list)
    source_info: dict[str, Any] = field(default_factory=dict)


def _check_pixels(width: int, height: int, limits: MediaLimits, label: str) -> None:
    if width <= 0 or height <= 0:
        raise CoDiUserError(f"The image {label} has no pixels ({width}×{height}).")
    if width * height > limits.max_image_pixels:
        raise CoDiUserError(
            f"The image {label} is {width}×{height} pixels ({width * height / 1e6:.0f} MP); the "
            f"limit is {limits.max_image_pixels / 1e6:.0f} MP. Downscale it and try again."
        )


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
    else:
        scale = (
            255.0 / 65535.0 if values.max(initial=0) > 255 or image.mode.startswith("I;16") else 1.0
        )
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _to_rgb(image: Image.Image, notices: list[str]) -> Image.Image:
    """Any Pillow mode → RGB, following the module's documented decisions."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _sixteen_bit_to_l(image)
    if _has_transparency(image):
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notices.append("The image has transparent areas; they were filled with white.")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise CoDiUserError(
            f"An image array must be H×W, H×W×3 or H×W×4; got shape {tuple(array.shape)}."
        )
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise CoDiUserError("The image array contains NaN or infinite values.")
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        raise CoDiUserError(f"Unsupported image array dtype {array.dtype}; use uint8.")
    return Image.fromarray(np.ascontiguousarray(array))


def _open(src: ImageSource, limits: MediaLimits) -> tuple[Image.Image, str]:
    """Open (lazily) any accepted source; returns the image and a label for messages."""
    if isinstance(src, Image.Image):
        return src, "you passed"
    if isinstance(src, np.ndarray):
        return _from_array(src), "you passed"
    if not isinstance(src, (str, os.PathLike, bytes)):
        raise CoDiUserError(f"Cannot read an image from a {type(src).__name__}; give a file path.")
    label = check_file_source(src, limits, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(src) if isinstance(src, bytes) else src), label
    except Image.DecompressionBombError as err:
        raise CoDiUserError(
            f"The image {label} has too many pixels to decode safely (Pillow's limit is "
            f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP). Downscale it and try again."
        ) from err
    except _DECODE_ERRORS as err:
        raise CoDiUserError(
            f"The file {label} is not an image Pillow can read. "
            "Use a PNG, JPEG, WebP, GIF, BMP or TIFF file."
        ) from err


def load_image(src: ImageSource, limits: MediaLimits = DEFAULT_LIMITS) -> LoadedImage:
    """Decode a path, bytes, PIL image or numpy array into an 8-bit RGB PIL image.

    Raises CoDiUserError for missing, empty, oversized, corrupt, truncated or unsupported inputs.
    """
    image, label = _open(src, limits)
    try:
        return _decode(image, label, limits)
    finally:
        if image is not src:
            image.close()


def _decode(image: Image.Image, label: str, limits: MediaLimits) -> LoadedImage:
    _check_pixels(image.width, image.height, limits, label)
    notices: list[str] = []
    info: dict[str, Any] = {"format": image.format, "mode": image.mode, "size": image.size}
    frames = getattr(image, "n_frames", 1)
    info["frames"] = frames
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if frames > 1:
                image.seek(0)
                notices.append(f"The image is animated ({frames} frames); the first frame is used.")
            image.load()
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            upright = ImageOps.exif_transpose(image) if orientation != 1 else image
            rgb = _to_rgb(upright, notices)
            if rgb is image:
                rgb = image.copy()
    except _DECODE_ERRORS as err:
        raise CoDiUserError(
            f"The image {label} is damaged or truncated and cannot be decoded. Re-export it."
        ) from err
    info["exif_orientation"] = orientation
    if min(rgb.size) < SMALL_SIDE:
        notices.append(
            f"The image is very small ({rgb.width}×{rgb.height}); "
            "it will be upscaled and look blurry."
        )
    return LoadedImage(image=rgb, notices=notices, source_info=info)
