"""The CoDi-Nano world: seeded scenes of coloured shapes as image, video, audio and caption.

A scene holds one or two objects. Each object has a colour (its audio pitch), a shape (its audio
timbre), a start position (left or right half) and a motion. Horizontal movers reflect off the
canvas walls; bouncers hop vertically and hit their floor. Every wall or floor hit is an event: a
velocity reversal in the video and a percussive onset in the audio at exactly that time. In
two-object scenes the objects have different colours, start in different halves and live in
separate horizontal lanes (upper and lower), so they never overlap.

Everything is a pure function of the numpy Generator passed to :func:`sample_scene` /
:func:`sample_batch`; rendering is deterministic and vectorised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from codi.nano.config import AUDIO_SAMPLES, FPS, IMAGE_SIZE, NUM_FRAMES, SAMPLE_RATE

VIDEO_SECONDS = NUM_FRAMES / FPS
AUDIO_SECONDS = AUDIO_SAMPLES / SAMPLE_RATE

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
}
BACKGROUND = (18, 18, 26)
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right")
MOTIONS = ("moving left", "moving right", "bouncing")
UNKNOWN = "unknown"

PITCHES: dict[str, float] = {"red": 220.0, "green": 310.0, "blue": 580.0, "yellow": 820.0}
# Harmonic amplitudes (index 0 = fundamental): sine, odd harmonics, all harmonics.
TIMBRES: dict[str, tuple[float, ...]] = {
    "circle": (1.0,),
    "square": (1.0, 0.0, 0.6, 0.0, 0.4, 0.0, 0.3),
    "triangle": (1.0, 0.6, 0.45, 0.35, 0.3, 0.25),
}

HALF_SIZE = 10.0  # objects span about 20 px
WALL_LO, WALL_HI = HALF_SIZE, IMAGE_SIZE - HALF_SIZE
HUM_LEVEL, ACCENT_LEVEL, CLICK_LEVEL = 0.25, 0.35, 0.35
ACCENT_DECAY_S, CLICK_DECAY_S, CLICK_SECONDS = 0.12, 0.008, 0.04


@dataclass(frozen=True)
class ObjectAttributes:
    """The describable attributes of one object; any may be ``UNKNOWN`` when measured."""

    colour: str
    shape: str
    position: str
    motion: str


@dataclass(frozen=True)
class SceneObject:
    """One object: attributes plus the kinematics that produce its track and events."""

    colour: str
    shape: str
    position: str
    motion: str
    x0: float
    y0: float
    vx: float = 0.0
    floor: float = 0.0
    hop: float = 0.0
    period: float = 1.0
    first_hit: float = 0.0

    @property
    def attributes(self) -> ObjectAttributes:
        return ObjectAttributes(self.colour, self.shape, self.position, self.motion)

    def track(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre (x, y) in pixels at the given times (seconds)."""
        times = np.asarray(times, dtype=np.float64)
        if self.motion == "bouncing":
            phase = np.pi * (times - self.first_hit) / self.period
            return np.full_like(times, self.x0), self.floor - self.hop * np.abs(np.sin(phase))
        span = WALL_HI - WALL_LO
        u = np.mod(self.x0 - WALL_LO + self.vx * times, 2 * span)
        return WALL_LO + np.where(u <= span, u, 2 * span - u), np.full_like(times, self.y0)

    @property
    def event_times(self) -> tuple[float, ...]:
        """Seconds of every wall or floor hit within the video."""
        if self.motion == "bouncing":
            hits = self.first_hit + self.period * np.arange(0, 8)
        else:
            span = WALL_HI - WALL_LO
            hits = (np.arange(-4, 5) * span - (self.x0 - WALL_LO)) / self.vx
        return tuple(float(t) for t in np.sort(hits) if 0.0 < t < VIDEO_SECONDS)


@dataclass(frozen=True)
class Scene:
    """One or two objects, left-most first."""

    objects: tuple[SceneObject, ...]

    @property
    def attributes(self) -> tuple[ObjectAttributes, ...]:
        return tuple(obj.attributes for obj in self.objects)

    @property
    def caption(self) -> str:
        return caption_for(self.attributes)

    @property
    def event_times(self) -> tuple[float, ...]:
        return tuple(sorted(t for obj in self.objects for t in obj.event_times))


@dataclass(frozen=True)
class WorldBatch:
    scenes: tuple[Scene, ...]
    images: np.ndarray  # [n, 64, 64, 3] uint8
    videos: np.ndarray  # [n, 8, 64, 64, 3] uint8
    audios: np.ndarray  # [n, 40960] float32
    captions: list[str]


def caption_for(objects: tuple[ObjectAttributes, ...]) -> str:
    """The fixed caption grammar: 'a red circle on the left moving right and a ...'."""
    return " and ".join(f"a {o.colour} {o.shape} on the {o.position} {o.motion}" for o in objects)


_CLAUSE = re.compile(
    r"an? (?P<colour>{}) (?P<shape>{}) on the (?P<position>{}) (?P<motion>{})".format(
        *("|".join(map(re.escape, names)) for names in (COLOURS, SHAPES, POSITIONS, MOTIONS))
    )
)


def parse_caption(text: str) -> tuple[ObjectAttributes, ...] | None:
    """The attributes of each clause of a caption in the world's grammar; None if unparsable."""
    clauses = re.sub(r"[^a-z ]", " ", text.lower()).split(" and ")
    parsed = []
    for clause in clauses:
        match = _CLAUSE.fullmatch(" ".join(clause.split()))
        if match is None:
            return None
        parsed.append(ObjectAttributes(**match.groupdict()))
    return tuple(parsed)


def _sample_object(
    rng: np.random.Generator, colour: str, position: str, lane: int | None
) -> SceneObject:
    shape = SHAPES[rng.integers(len(SHAPES))]
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    x0 = float(rng.uniform(20.0, 24.0) if position == "left" else rng.uniform(40.0, 44.0))
    if motion == "bouncing":
        floor = WALL_HI if lane != 0 else IMAGE_SIZE / 2 - HALF_SIZE
        hop = float(rng.uniform(16.0, 28.0) if lane is None else rng.uniform(6.0, 12.0))
        period, first_hit = float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.3, 1.0))
        y0 = floor - hop * abs(np.sin(np.pi * first_hit / period))
        return SceneObject(colour, shape, position, motion, x0, float(y0), floor=floor, hop=hop,
                           period=period, first_hit=first_hit)
    speed = float(rng.uniform(16.0, 22.0))
    y0 = IMAGE_SIZE / 2 if lane is None else (16.0, 48.0)[lane]
    vx = speed if motion == "moving right" else -speed
    return SceneObject(colour, shape, position, motion, x0, y0, vx=vx)


def sample_scene(rng: np.random.Generator, max_objects: int = 2) -> Scene:
    """A random scene of 1..max_objects (at most 2) objects with distinct colours and halves."""
    if not 1 <= max_objects <= 2:
        raise ValueError("max_objects must be 1 or 2")
    count = int(rng.integers(1, max_objects + 1))
    colours = [list(COLOURS)[i] for i in rng.choice(len(COLOURS), size=count, replace=False)]
    if count == 1:
        return Scene((_sample_object(rng, colours[0], POSITIONS[rng.integers(2)], None),))
    lanes = rng.permutation(2)
    return Scene(tuple(
        _sample_object(rng, colour, position, int(lane))
        for colour, position, lane in zip(colours, POSITIONS, lanes)
    ))


_GRID_Y, _GRID_X = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + 0.5


def _shape_mask(shape: str, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Boolean masks [t, H, W] of a shape centred at (cx[t], cy[t])."""
    dx = _GRID_X[None] - cx[:, None, None].astype(np.float32)
    dy = _GRID_Y[None] - cy[:, None, None].astype(np.float32)
    if shape == "circle":
        return dx * dx + dy * dy <= HALF_SIZE**2
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= HALF_SIZE - 1
    height = 2 * (HALF_SIZE - 1)
    rel = dy + height / 2
    return (rel >= 0) & (rel <= height) & (np.abs(dx) <= HALF_SIZE * rel / height)


def _render_at(scene: Scene, times: np.ndarray) -> np.ndarray:
    frames = np.empty((len(times), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    frames[:] = BACKGROUND
    for obj in scene.objects:
        mask = _shape_mask(obj.shape, *obj.track(times))
        frames[mask] = COLOURS[obj.colour]
    return frames


def frame_times() -> np.ndarray:
    """Seconds of each video frame."""
    return np.arange(NUM_FRAMES) / FPS


def render_image(scene: Scene) -> np.ndarray:
    """The scene at t=0: uint8 [64, 64, 3]."""
    return _render_at(scene, np.zeros(1))[0]


def render_video(scene: Scene) -> np.ndarray:
    """8 frames at 4 fps: uint8 [8, 64, 64, 3]."""
    return _render_at(scene, frame_times())


_AUDIO_T = np.arange(AUDIO_SAMPLES, dtype=np.float64) / SAMPLE_RATE


@cache
def _tone(colour: str, shape: str) -> np.ndarray:
    pitch = PITCHES[colour]
    wave = sum(a * np.sin(2 * np.pi * k * pitch * _AUDIO_T)
               for k, a in enumerate(TIMBRES[shape], start=1) if a)
    return (wave / np.abs(wave).max()).astype(np.float32)


@lru_cache(maxsize=1)
def _click() -> np.ndarray:
    n = int(CLICK_SECONDS * SAMPLE_RATE)
    noise = np.random.default_rng(1234).uniform(-1.0, 1.0, n)
    return (CLICK_LEVEL * noise * np.exp(-np.arange(n) / (CLICK_DECAY_S * SAMPLE_RATE))).astype(
        np.float32
    )


def render_audio(scene: Scene) -> np.ndarray:
    """2.56 s at 16 kHz, float32 [40960] in [-1, 1]: a hum per object, a pluck per event."""
    audio = np.zeros(AUDIO_SAMPLES, dtype=np.float32)
    click = _click()
    for obj in scene.objects:
        envelope = np.full(AUDIO_SAMPLES, HUM_LEVEL, dtype=np.float64)
        for t_event in obj.event_times:
            start = int(round(t_event * SAMPLE_RATE))
            dt = _AUDIO_T[start:] - _AUDIO_T[start]
            envelope[start:] += ACCENT_LEVEL * np.exp(-dt / ACCENT_DECAY_S)
            stop = min(AUDIO_SAMPLES, start + len(click))
            audio[start:stop] += click[: stop - start]
        audio += (envelope * _tone(obj.colour, obj.shape)).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)


def sample_batch(rng: np.random.Generator, n: int, max_objects: int = 2) -> WorldBatch:
    """n seeded scenes with their renders."""
    scenes = tuple(sample_scene(rng, max_objects) for _ in range(n))
    videos = np.stack([render_video(s) for s in scenes]) if scenes else np.zeros(
        (0, NUM_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    audios = np.stack([render_audio(s) for s in scenes]) if scenes else np.zeros(
        (0, AUDIO_SAMPLES), np.float32)
    return WorldBatch(scenes, videos[:, 0].copy(), videos, audios, [s.caption for s in scenes])
