"""load_video on clips made with the bundled ffmpeg: frames, sampling rule, audio track, errors."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from codi.errors import CoDiUserError
from codi.media import MediaLimits, load_video, save_mp4
from codi.media.ffmpeg import ffmpeg_exe
from codi.media.video import sample_indices

COLOURS = np.array(
    [
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 0),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
        (0, 0, 0),
    ],
    np.uint8,
)


def numbered_frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frame k is a solid colour COLOURS[k % 8] (identifiable after lossy encoding)."""
    return np.stack([np.full((height, width, 3), COLOURS[k % 8], np.uint8) for k in range(count)])


def colour_index(frame: np.ndarray) -> int:
    return int(np.abs(COLOURS.astype(int) - frame.reshape(-1, 3).mean(0)).sum(1).argmin())


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def test_sample_indices_rule():
    assert sample_indices(16, 8).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_indices(8, 8).tolist() == list(range(8))
    assert sample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert sample_indices(100, 1).tolist() == [50]


def test_frames_are_sampled_over_the_whole_clip(tmp_path):
    path = save_mp4(numbered_frames(24), 8, tmp_path / "c.mp4").path  # 3 s, frame k = colour k%8
    video = load_video(path, num_frames=4)
    assert video.frames.shape == (4, 32, 48, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(8) and video.duration_s == pytest.approx(3.0, abs=0.05)
    expected = sample_indices(24, 4)
    assert video.source_info["frame_indices"] == expected.tolist()
    assert [colour_index(f) for f in video.frames] == [int(i) % 8 for i in expected]
    assert video.audio is None and video.notices == []


def test_clip_with_audio_track_and_odd_size(tmp_path):
    wav = tmp_path / "a.wav"
    t = np.arange(44100 * 2) / 44100
    sf.write(wav, (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    mp4 = tmp_path / "av.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=65x49:r=10:d=2",
        "-i",
        str(wav),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        "-c:a",
        "aac",
        "-shortest",
        str(mp4),
    )
    video = load_video(mp4.read_bytes(), num_frames=8)
    assert video.frames.shape == (8, 49, 65, 3)
    assert video.audio is not None and video.audio.sample_rate == 16000
    assert video.audio.duration_s == pytest.approx(2.0, abs=0.06)
    rms = float(np.sqrt(np.mean(video.audio.wave[1600:-1600] ** 2)))
    assert rms == pytest.approx(0.4 / np.sqrt(2), abs=0.03)


def test_short_clip_repeats_frames_with_notice(tmp_path):
    path = save_mp4(numbered_frames(3), 4, tmp_path / "short.mp4").path
    video = load_video(path, num_frames=6)
    assert [colour_index(f) for f in video.frames] == [0, 0, 1, 1, 2, 2]
    assert any("only 3 frames" in n for n in video.notices)


def test_too_long_clip_is_cropped_or_refused(tmp_path):
    path = save_mp4(numbered_frames(40), 4, tmp_path / "long.mp4").path  # 10 s
    video = load_video(path, num_frames=4, limits=MediaLimits(max_video_seconds=4.0))
    assert video.duration_s == pytest.approx(4.0) and video.source_info["source_frames"] == 16
    assert [colour_index(f) for f in video.frames] == [int(i) % 8 for i in sample_indices(16, 4)]
    assert any("first 4 s" in n for n in video.notices)
    with pytest.raises(CoDiUserError, match="limit is 4 s"):
        load_video(path, limits=MediaLimits(max_video_seconds=4.0, too_long="refuse"))


def test_corrupt_truncated_and_non_video_files(tmp_path):
    good = save_mp4(numbered_frames(8), 4, tmp_path / "good.mp4").path
    data = good.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 40)
    for path in (truncated, garbage):
        with pytest.raises(CoDiUserError):
            load_video(path)
    audio_only = tmp_path / "sound.wav"
    sf.write(audio_only, np.zeros(16000, np.float32), 16000)
    with pytest.raises(CoDiUserError, match="no video stream"):
        load_video(audio_only)
    with pytest.raises(CoDiUserError, match="per frame"):
        load_video(good, limits=MediaLimits(max_image_pixels=100))
