"""Model-free measurements of the world's attributes in images, videos, audio and captions.

The probes use only colour statistics, shape moments, centroid tracks, spectra and onset
detection — never a model — so they can grade any generator. Whatever they cannot read is
``UNKNOWN``; they never raise on noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy import ndimage

from codi.nano.world import (
    BACKGROUND,
    COLOURS,
    FPS,
    IMAGE_SIZE,
    PITCHES,
    SAMPLE_RATE,
    UNKNOWN,
    ObjectAttributes,
    parse_caption,
)

COLOUR_TOLERANCE = 100.0  # RGB distance to the nearest palette colour
MIN_AREA, MAX_AREA = 60, 1200  # pixels at 64 x 64
MIN_TRAVEL = 2.0  # pixels a track must move to count as motion
PITCH_BAND = 0.025  # relative half-width of a pitch band
TONAL_RATIO = 20.0  # peak over the median spectrum for a pitch to be heard
PRESENT_RATIO = 0.25  # a second pitch must reach this fraction of the loudest
HARMONIC_RATIO = 0.2  # harmonic over fundamental magnitude for a timbre to count
ONSET_HOP = 160
ONSET_DELTA = 4.0  # spectral flux (log-mel units) above the local mean for an onset
ONSET_EDGE_S = 0.05  # onsets this close to either end of the clip are edge effects

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
_NAMES = list(COLOURS)


@dataclass(frozen=True)
class Blob:
    """One object found in an image: attributes (motion unknown), centroid (px) and area."""

    attributes: ObjectAttributes
    x: float
    y: float
    area: int


@dataclass(frozen=True)
class Track:
    """One object followed through a video, with the seconds of its velocity reversals."""

    attributes: ObjectAttributes
    area: int
    event_times: tuple[float, ...]


@dataclass(frozen=True)
class AudioReading:
    """Objects heard (colour from pitch, shape from timbre; loudest first) and onset seconds."""

    objects: tuple[ObjectAttributes, ...]
    onsets: tuple[float, ...]


def _colour_masks(image: np.ndarray) -> list[np.ndarray]:
    pixels = np.asarray(image, dtype=np.float32)[..., :3]
    dist = np.linalg.norm(pixels[..., None, :] - _PALETTE, axis=-1)
    background = np.linalg.norm(pixels - np.asarray(BACKGROUND, np.float32), axis=-1)
    nearest = dist.argmin(-1)
    ok = (dist.min(-1) < COLOUR_TOLERANCE) & (dist.min(-1) < background)
    return [ndimage.binary_opening(ok & (nearest == i)) for i in range(len(_NAMES))]


def _shape_of(mask: np.ndarray) -> str:
    rows, cols = np.nonzero(mask)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    fill = mask.sum() / (height * width)
    middle = rows.min() + height / 2
    top, bottom = (rows < middle).sum(), (rows >= middle).sum()
    if top < 0.6 * bottom:
        return "triangle"
    return "square" if fill > 0.89 else "circle"


def probe_image(image: np.ndarray) -> tuple[Blob, ...]:
    """Objects in an RGB image [H, W, 3], left-most first; empty if none is readable."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] < 3:
        return ()
    height, width = image.shape[:2]
    scale = height * width / IMAGE_SIZE**2
    blobs = []
    for name, mask in zip(_NAMES, _colour_masks(image)):
        labels, count = ndimage.label(mask)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        component = labels == sizes.argmax() + 1
        area = int(sizes.max())
        rows, cols = np.nonzero(component)
        aspect = (np.ptp(rows) + 1) / (np.ptp(cols) + 1)
        if not (MIN_AREA * scale <= area <= MAX_AREA * scale and 0.5 <= aspect <= 2.0):
            continue
        x, y = float(cols.mean() + 0.5), float(rows.mean() + 0.5)
        position = "left" if x < width / 2 else "right"
        attributes = ObjectAttributes(name, _shape_of(component), position, UNKNOWN)
        blobs.append(Blob(attributes, x, y, area))
    return tuple(sorted(blobs, key=lambda b: b.x))


def _reversal_times(values: np.ndarray, maxima_only: bool, fps: float) -> list[float]:
    """Seconds of the turning points of a sampled track, refined for a sharp reflection."""
    times = []
    for k in range(1, len(values) - 1):
        before, after = values[k] - values[k - 1], values[k] - values[k + 1]
        peak = before > 0 and after >= 0
        trough = before < 0 and after <= 0
        if max(abs(before), abs(after)) < 0.5 or not (peak or (trough and not maxima_only)):
            continue
        delta = (abs(before) - abs(after)) / (2 * max(abs(before), abs(after)))
        times.append((k + delta) / fps)
    return times


def _motion_of(xs: np.ndarray, ys: np.ndarray) -> str:
    if max(np.ptp(xs), np.ptp(ys)) < MIN_TRAVEL:
        return UNKNOWN
    if np.ptp(ys) > np.ptp(xs):
        return "bouncing"
    steps = np.diff(xs)
    first = steps[np.abs(steps) >= 0.5]
    if len(first) == 0:
        return UNKNOWN
    return "moving right" if first[0] > 0 else "moving left"


def probe_video(video: np.ndarray, fps: float = FPS) -> tuple[Track, ...]:
    """Objects tracked by colour through frames [T, H, W, 3], ordered as in the first frame."""
    video = np.asarray(video)
    if video.ndim != 4 or len(video) < 3:
        return ()
    per_frame = [{b.attributes.colour: b for b in probe_image(frame)} for frame in video]
    tracks = []
    for first in per_frame[0].values():
        colour = first.attributes.colour
        found = [frame[colour] for frame in per_frame if colour in frame]
        if len(found) < len(video) - 1 or colour not in per_frame[-1]:
            continue
        indices = [k for k, frame in enumerate(per_frame) if colour in frame]
        xs = np.interp(np.arange(len(video)), indices, [b.x for b in found])
        ys = np.interp(np.arange(len(video)), indices, [b.y for b in found])
        motion = _motion_of(xs, ys)
        if motion == "bouncing":
            events = _reversal_times(ys, maxima_only=True, fps=fps)
        elif motion == UNKNOWN:
            events = []
        else:
            events = _reversal_times(xs, maxima_only=False, fps=fps)
        shapes = [b.attributes.shape for b in found]
        shape = max(set(shapes), key=shapes.count)
        attributes = ObjectAttributes(colour, shape, first.attributes.position, motion)
        tracks.append(Track(attributes, first.area, tuple(events)))
    return tuple(tracks)


def _band_peak(magnitude: np.ndarray, freqs: np.ndarray, centre: float) -> float:
    band = (freqs >= centre * (1 - PITCH_BAND)) & (freqs <= centre * (1 + PITCH_BAND))
    return float(magnitude[band].max()) if band.any() else 0.0


def _timbre_of(magnitude: np.ndarray, freqs: np.ndarray, pitch: float) -> str:
    fundamental = _band_peak(magnitude, freqs, pitch)
    if _band_peak(magnitude, freqs, 2 * pitch) > HARMONIC_RATIO * fundamental:
        return "triangle"
    if _band_peak(magnitude, freqs, 3 * pitch) > HARMONIC_RATIO * fundamental:
        return "square"
    return "circle"


def audio_onsets(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[float, ...]:
    """Seconds of percussive onsets: peaks of the log-mel spectral flux above an absolute level."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).ravel())
    if len(audio) < 2048 or np.abs(audio).max() == 0:
        return ()
    envelope = librosa.onset.onset_strength(y=audio, sr=sample_rate, hop_length=ONSET_HOP)
    frames = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=sample_rate, hop_length=ONSET_HOP, normalize=False,
        delta=ONSET_DELTA,
    )
    times = librosa.frames_to_time(frames, sr=sample_rate, hop_length=ONSET_HOP)
    end = len(audio) / sample_rate - ONSET_EDGE_S
    return tuple(float(t) for t in times if ONSET_EDGE_S < t < end)


def probe_audio(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> AudioReading:
    """Colours by pitch, shapes by harmonic content, and onset times of a mono waveform."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float64).ravel())
    if len(audio) < 2048:
        return AudioReading((), ())
    magnitude = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    floor = np.median(magnitude[(freqs > 100) & (freqs < 4000)]) + 1e-12
    peaks = {name: _band_peak(magnitude, freqs, pitch) for name, pitch in PITCHES.items()}
    loudest = max(peaks.values())
    heard = sorted(
        (name for name, peak in peaks.items()
         if peak > TONAL_RATIO * floor and peak >= PRESENT_RATIO * loudest),
        key=lambda name: -peaks[name],
    )
    objects = tuple(
        ObjectAttributes(name, _timbre_of(magnitude, freqs, PITCHES[name]), UNKNOWN, UNKNOWN)
        for name in heard
    )
    return AudioReading(objects, audio_onsets(audio, sample_rate))


def probe_caption(text: str) -> tuple[ObjectAttributes, ...]:
    """The objects a caption describes; empty if it is not in the world's grammar."""
    return parse_caption(text) or ()
