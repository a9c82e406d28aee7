"""load_audio on the shared recordings and on generated formats; fit_to_length."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED

from codi.errors import CoDiUserError
from codi.media import MediaLimits, fit_to_length, load_audio
from codi.media.ffmpeg import ffmpeg_exe

MEDIA = SHARED / "media"
SR = 16000


def media_file(name: str):
    path = MEDIA / name
    if not path.exists():
        pytest.skip(f"needs the real test media {path} (../shared/media is absent)")
    return path


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def stereo(rate: int, seconds: float) -> np.ndarray:
    """Left 440 Hz at 0.6, right silent: the mono mean is a 440 Hz tone at 0.3."""
    left = tone(rate, seconds, amp=0.6)
    return np.stack([left, np.zeros_like(left)], axis=1)


def assert_tone(loaded, seconds: float, amp: float, tol: float = 0.03):
    assert loaded.wave.dtype == np.float32 and loaded.wave.ndim == 1 and loaded.sample_rate == SR
    assert loaded.duration_s == pytest.approx(seconds, abs=0.06)
    rms = float(np.sqrt(np.mean(loaded.wave[SR // 10 : -SR // 10] ** 2)))
    assert rms == pytest.approx(amp / np.sqrt(2), abs=tol)
    spectrum = np.abs(np.fft.rfft(loaded.wave))
    assert np.fft.rfftfreq(loaded.wave.size, 1 / SR)[spectrum.argmax()] == pytest.approx(440, abs=2)


@pytest.mark.parametrize("name", ["guitar_sound.flac", "train_sound.flac", "wind_chimes.wav"])
def test_shared_recordings(name):
    loaded = load_audio(media_file(name))
    assert loaded.sample_rate == SR and loaded.wave.dtype == np.float32 and loaded.wave.ndim == 1
    assert loaded.duration_s == pytest.approx(10.0, abs=0.5)
    assert loaded.source_info["channels"] == 2 and loaded.source_info["source_sample_rate"] in (
        44100,
        48000,
    )
    assert np.abs(loaded.wave).max() <= 1.0 and np.sqrt(np.mean(loaded.wave**2)) > 1e-3


def test_shared_recording_matches_manual_mixdown():
    path = media_file("wind_chimes.wav")
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    import soxr

    expected = soxr.resample(data.mean(axis=1), rate, SR, quality="HQ")
    assert np.allclose(load_audio(path).wave, np.clip(expected, -1, 1), atol=1e-6)


@pytest.mark.parametrize(
    "fmt,subtype,name",
    [
        ("WAV", "PCM_16", "s.wav"),
        ("OGG", "VORBIS", "s.ogg"),
        ("MP3", "MPEG_LAYER_III", "s.mp3"),
        ("FLAC", "PCM_24", "s.flac"),
    ],
)
def test_soundfile_formats_stereo_44k(tmp_path, fmt, subtype, name):
    path = tmp_path / name
    sf.write(path, stereo(44100, 1.5), 44100, format=fmt, subtype=subtype)
    loaded = load_audio(path)
    assert loaded.source_info["decoder"] == "soundfile"
    assert_tone(loaded, 1.5, 0.3)
    assert_tone(load_audio(path.read_bytes()), 1.5, 0.3)


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def test_m4a_and_mp4_audio_track_via_ffmpeg(tmp_path):
    wav = tmp_path / "src.wav"
    sf.write(wav, stereo(44100, 2.0), 44100)
    m4a = tmp_path / "s.m4a"
    _ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "128k", str(m4a))
    loaded = load_audio(m4a)
    assert loaded.source_info["decoder"] == "ffmpeg" and loaded.source_info["channels"] == 2
    assert_tone(loaded, 2.0, 0.3)
    assert_tone(load_audio(m4a.read_bytes()), 2.0, 0.3)
    mp4 = tmp_path / "v.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=32x32:r=4:d=2",
        "-i",
        str(wav),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(mp4),
    )
    assert_tone(load_audio(mp4), 2.0, 0.3)


def test_video_without_sound_is_a_user_error(tmp_path):
    mp4 = tmp_path / "silent.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=32x32:r=4:d=1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(mp4),
    )
    with pytest.raises(CoDiUserError, match="no audio track"):
        load_audio(mp4)


def test_nan_float_wav_is_refused(tmp_path):
    data = tone(SR, 1.0)
    data[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    with pytest.raises(CoDiUserError, match="NaN"):
        load_audio(path)


def test_loud_float_wav_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, tone(SR, 1.0, amp=2.0), SR, subtype="FLOAT")
    loaded = load_audio(path)
    assert np.abs(loaded.wave).max() == pytest.approx(1.0, abs=1e-3)
    assert any("scaled down" in n for n in loaded.notices)
    assert_tone(loaded, 1.0, 1.0)


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), SR)
    assert empty.stat().st_size > 0
    with pytest.raises(CoDiUserError, match="no samples"):
        load_audio(empty)
    garbage = tmp_path / "noise.mp3"
    garbage.write_bytes(b"definitely not audio " * 100)
    with pytest.raises(CoDiUserError):
        load_audio(garbage)
    with pytest.raises(CoDiUserError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(CoDiUserError):
        load_audio(np.zeros(10))


def test_too_long_is_cropped_or_refused(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, tone(SR, 3.0), SR)
    loaded = load_audio(path, limits=MediaLimits(max_audio_seconds=1.0))
    assert loaded.wave.shape == (SR,) and any("first 1 s" in n for n in loaded.notices)
    with pytest.raises(CoDiUserError, match="limit is 1 s"):
        load_audio(path, limits=MediaLimits(max_audio_seconds=1.0, too_long="refuse"))
    m4a = tmp_path / "long.m4a"
    _ffmpeg("-i", str(path), "-c:a", "aac", str(m4a))
    cropped = load_audio(m4a, limits=MediaLimits(max_audio_seconds=1.0))
    assert cropped.duration_s == pytest.approx(1.0, abs=0.01) and len(cropped.notices) == 1


def test_in_memory_int16_and_resampling():
    pcm = (stereo(22050, 1.0) * 32767).astype(np.int16)
    loaded = load_audio((22050, pcm))
    assert_tone(loaded, 1.0, 0.3)
    same_rate = load_audio((SR, tone(SR, 0.5)))
    assert np.allclose(same_rate.wave, tone(SR, 0.5))


def test_fit_to_length_modes():
    wave = np.arange(1, 7, dtype=np.float32)
    assert fit_to_length(wave, 4).tolist() == [1, 2, 3, 4]
    assert fit_to_length(wave, 4, "center").tolist() == [2, 3, 4, 5]
    assert fit_to_length(wave, 9).tolist() == [1, 2, 3, 4, 5, 6, 0, 0, 0]
    assert fit_to_length(wave, 9, "center").tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 0]
    batch = np.ones((2, 3), np.float32)
    assert fit_to_length(batch, 5).shape == (2, 5)
    result = fit_to_length(wave, 6)
    result[0] = 99
    assert wave[0] == 1
    with pytest.raises(ValueError):
        fit_to_length(wave, 3, "end")
