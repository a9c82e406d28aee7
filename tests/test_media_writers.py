"""Writers round trip: PNG metadata, WAV/text sidecars, GIF, MP4 decoded back (both modes)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from codi.media import (
    load_audio,
    load_image,
    load_video,
    read_png_metadata,
    save_gif,
    save_mp4,
    save_png,
    save_text,
    save_wav,
    sidecar_path,
)
from codi.media.ffmpeg import count_video_packets, ffmpeg_exe, probe

META = {"seed": 7, "prompt": "a cat — on a mat", "steps": 50, "path": None}


def test_png_metadata_round_trip(tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    path = save_png(image, tmp_path / "sub" / "out.png", META)
    assert read_png_metadata(path) == META
    assert np.array_equal(np.asarray(load_image(path).image), np.asarray(image))
    plain = save_png(image, tmp_path / "plain.png")
    assert read_png_metadata(plain) == {}


def test_wav_is_16bit_clipped_with_sidecar(tmp_path):
    wave = np.array([0.0, 0.5, -0.5, 1.5, -2.0, np.nan], np.float32)
    path = save_wav(wave[None, :], 16000, tmp_path / "out.wav", META)
    info = sf.info(path)
    assert info.subtype == "PCM_16" and info.samplerate == 16000 and info.channels == 1
    data, _ = sf.read(path, dtype="int16")
    assert data.tolist() == [0, 16384, -16384, 32767, -32768, 0]
    assert sidecar_path(path).name == "out.wav.json"
    assert json.loads(sidecar_path(path).read_text()) == META


def test_text_with_sidecar(tmp_path):
    path = save_text("a dog running on the beach", tmp_path / "caption.txt", META)
    assert path.read_text(encoding="utf-8") == "a dog running on the beach\n"
    assert json.loads((tmp_path / "caption.txt.json").read_text()) == META


def test_gif_frames_and_timing(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = save_gif(frames, 4, tmp_path / "v.gif", META)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.info["duration"] == 250
    assert sidecar_path(path).exists()


def _header(path) -> str:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True)
    return proc.stderr.decode()


def _frames(count: int, height: int = 33, width: int = 45) -> np.ndarray:
    ramp = np.linspace(0, 255, count).astype(np.uint8)
    return np.broadcast_to(ramp[:, None, None, None], (count, height, width, 3)).copy()


def test_mp4_without_audio_is_browser_playable(tmp_path):
    info = save_mp4(_frames(8), 4, tmp_path / "v.mp4", metadata=META)
    assert (
        info.frames == 8
        and info.duration_s == 2.0
        and not info.has_audio
        and info.reconcile is None
    )
    header = _header(info.path)
    assert "h264" in header and "yuv420p" in header and "46x34" in header  # odd size padded to even
    assert json.dumps(META, ensure_ascii=True, sort_keys=True)[:20] in header  # comment tag
    data = info.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    found = probe(info.path)
    assert (
        found.has_video and not found.has_audio and found.duration_s == pytest.approx(2.0, abs=0.05)
    )
    assert count_video_packets(info.path, "v.mp4") == 8
    decoded = load_video(info.path, num_frames=8).frames
    assert decoded.shape == (8, 34, 46, 3)
    assert np.abs(decoded[:, :33, :45].astype(int) - _frames(8)).mean() < 3
    assert np.abs(decoded[:, 33].astype(int) - decoded[:, 32]).mean() < 3  # edge-replicated row


def _tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("mode,frames,seconds", [("trim_audio", 8, 2.0), ("loop_video", 41, 10.25)])
def test_mp4_with_audio_both_reconcile_modes(tmp_path, mode, frames, seconds):
    audio = _tone(10.24)  # CoDi's joint output: 8 frames at 4 fps (2 s) vs 10.24 s of audio
    info = save_mp4(
        _frames(8),
        4,
        tmp_path / f"{mode}.mp4",
        audio=audio,
        audio_rate=16000,
        reconcile=mode,
        metadata=META,
    )
    assert info.reconcile == mode and info.has_audio and info.frames == frames
    assert info.duration_s == pytest.approx(seconds) and info.audio_duration_s == pytest.approx(
        seconds
    )
    assert "aac" in _header(info.path)
    assert count_video_packets(info.path, info.path.name) == frames
    assert probe(info.path).duration_s == pytest.approx(seconds, abs=0.1)
    sound = load_audio(info.path)
    assert sound.duration_s == pytest.approx(seconds, abs=0.05)
    assert np.sqrt(np.mean(sound.wave[1600:-1600] ** 2)) == pytest.approx(
        0.5 / np.sqrt(2), abs=0.03
    )
    video = load_video(info.path, num_frames=frames)
    assert video.audio is not None and video.frames.shape[0] == frames
    if mode == "loop_video":  # frame k repeats frame k % 8
        levels = video.frames[:, 5, 5, 0].astype(int)
        assert np.abs(levels[8:16] - levels[:8]).max() < 4 and levels[40] == pytest.approx(
            levels[0], abs=4
        )


def test_mp4_short_audio_is_padded_and_bad_mode_rejected(tmp_path):
    info = save_mp4(_frames(8), 4, tmp_path / "pad.mp4", audio=_tone(0.5))
    assert info.audio_duration_s == pytest.approx(2.0) and load_audio(
        info.path
    ).duration_s == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError):
        save_mp4(_frames(8), 4, tmp_path / "bad.mp4", audio=_tone(1.0), reconcile="stretch")
    with pytest.raises(ValueError):
        save_mp4(np.zeros((0, 8, 8, 3), np.uint8), 4, tmp_path / "empty.mp4")


def test_mp4_accepts_pil_frames(tmp_path):
    pil = [Image.fromarray(f) for f in _frames(4, 16, 16)]
    info = save_mp4(pil, 8, tmp_path / "pil.mp4")
    assert info.frames == 4 and count_video_packets(info.path, "pil.mp4") == 4
