"""`python -m codi.media.examples`: draw, synthesise and encode the studio's example media.

Everything is made from code (PIL drawings, NumPy sounds, an MP4 via codi.media.writers), so
the examples carry no third-party content. Output: assets/examples/ (small files, committed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from codi.media.writers import save_mp4, save_wav
from codi.store.assets import EXAMPLES_DIR

SIDE = 256
RATE = 16000


def _vertical_gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0, 1, SIDE)[:, None, None]
    rows = (1 - t) * np.array(top) + t * np.array(bottom)
    return Image.fromarray(np.repeat(rows, SIDE, axis=1).astype(np.uint8))


def sunset() -> Image.Image:
    """Sky gradient, a sun sinking into the sea, a lighthouse on a cliff."""
    image = _vertical_gradient((250, 150, 80), (120, 60, 140))
    draw = ImageDraw.Draw(image)
    draw.ellipse((88, 110, 168, 190), fill=(255, 214, 110))
    draw.rectangle((0, 160, SIDE, SIDE), fill=(40, 70, 130))
    for y in range(168, SIDE, 10):
        draw.line((20 + y % 30, y, 120 + y % 50, y), fill=(250, 190, 120), width=2)
    draw.polygon([(170, SIDE), (190, 150), (256, 140), (256, SIDE)], fill=(50, 40, 45))
    draw.rectangle((214, 88, 226, 142), fill=(235, 235, 230))
    draw.rectangle((214, 102, 226, 110), fill=(200, 40, 40))
    draw.polygon([(211, 88), (220, 76), (229, 88)], fill=(200, 40, 40))
    return image


def city() -> Image.Image:
    """A night skyline with lit windows and a moon."""
    rng = np.random.default_rng(7)
    image = _vertical_gradient((12, 16, 48), (50, 40, 90))
    draw = ImageDraw.Draw(image)
    draw.ellipse((190, 24, 226, 60), fill=(240, 240, 210))
    x = 0
    while x < SIDE:
        width, height = int(rng.integers(24, 48)), int(rng.integers(70, 200))
        draw.rectangle((x, SIDE - height, x + width - 3, SIDE), fill=(25, 25, 38))
        for wy in range(SIDE - height + 8, SIDE - 6, 12):
            for wx in range(x + 5, x + width - 8, 9):
                if rng.random() < 0.45:
                    draw.rectangle((wx, wy, wx + 4, wy + 6), fill=(255, 210, 120))
        x += width
    return image


def bell(seconds: float = 2.0) -> np.ndarray:
    """A struck bell: inharmonic partials with exponential decays."""
    t = np.arange(int(RATE * seconds)) / RATE
    partials = [(523.0, 1.0, 1.2), (1046.0, 0.5, 0.9), (1410.0, 0.35, 0.6), (2090.0, 0.2, 0.4)]
    wave = sum(a * np.exp(-t / d) * np.sin(2 * np.pi * f * t) for f, a, d in partials)
    return (0.6 * wave / np.abs(wave).max()).astype(np.float32)


def bouncing_ball(frames: int = 16, fps: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """A ball bouncing across a floor, with a thump at each bounce."""
    side = 128
    video = np.zeros((frames, side, side, 3), dtype=np.uint8)
    bounces = []
    for i in range(frames):
        image = _vertical_gradient((150, 200, 240), (230, 240, 250)).resize((side, side))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 104, side, side), fill=(90, 150, 80))
        phase = (i % 8) / 8
        y = 92 - 70 * 4 * phase * (1 - phase)
        x = 8 + i * (side - 32) / frames
        draw.ellipse((x, y - 12, x + 24, y + 12), fill=(220, 50, 50))
        if i % 8 == 0:
            bounces.append(i / fps)
        video[i] = np.asarray(image)
    t = np.arange(int(RATE * frames / fps)) / RATE
    audio = np.zeros_like(t)
    for start in bounces:
        dt = np.clip(t - start, 0, None)
        audio += np.where(t >= start, np.exp(-dt / 0.08) * np.sin(2 * np.pi * 90 * dt), 0)
    return video, (0.7 * audio).astype(np.float32)


def world_scene(caption_start: str, seed: int = 0):
    """The first single-object scene of the shapes world (seeded) whose caption starts so."""
    from codi.nano.world import sample_scene

    rng = np.random.default_rng(seed)
    while True:
        scene = sample_scene(rng, max_objects=1)
        if scene.caption.startswith(caption_start):
            return scene


def make_world_examples(out_dir: Path) -> list[Path]:
    """CoDi-Nano's example media: a picture, a sound and a clip from its shapes world."""
    from codi.nano.world import FPS, SAMPLE_RATE, render_audio, render_image, render_video

    picture = world_scene("a blue triangle")
    Image.fromarray(render_image(picture)).save(out_dir / "shapes_picture.png", optimize=True)
    sound = world_scene("a yellow square")
    written = [out_dir / "shapes_picture.png",
               Path(save_wav(render_audio(sound), SAMPLE_RATE, out_dir / "shapes_sound.wav"))]
    clip = world_scene("a red circle", seed=1)
    written.append(Path(save_mp4(render_video(clip), FPS, out_dir / "shapes_clip.mp4",
                                 audio=render_audio(clip), audio_rate=SAMPLE_RATE).path))
    return written


def make_examples(out_dir: Path = EXAMPLES_DIR) -> list[Path]:
    """Write every example file; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("sunset.png", sunset), ("city.png", city)):
        draw().save(out_dir / name, optimize=True)
        written.append(out_dir / name)
    written.append(Path(save_wav(bell(), RATE, out_dir / "bell.wav")))
    frames, audio = bouncing_ball()
    written.append(Path(save_mp4(frames, 8.0, out_dir / "bouncing_ball.mp4", audio=audio,
                                 audio_rate=RATE).path))
    return written + make_world_examples(out_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    for path in make_examples(parser.parse_args(argv).out):
        print(path)


if __name__ == "__main__":
    main()
