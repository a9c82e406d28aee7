"""The CoDi-Nano world: seeded, well-formed, and its media agree with its scenes."""

from __future__ import annotations

import numpy as np
import pytest

from codi.nano import world


@pytest.fixture(scope="module")
def batch() -> world.WorldBatch:
    return world.sample_batch(np.random.default_rng(1234), 48)


def test_batch_shapes_and_ranges(batch):
    n = len(batch.scenes)
    assert batch.images.shape == (n, world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
    assert batch.videos.shape == (n, world.NUM_FRAMES, world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
    assert batch.audios.shape == (n, world.AUDIO_SAMPLES)
    assert batch.images.dtype == np.uint8 and batch.videos.dtype == np.uint8
    assert batch.audios.dtype == np.float32 and np.abs(batch.audios).max() <= 1.0
    assert np.array_equal(batch.images, batch.videos[:, 0])
    assert batch.captions == [s.caption for s in batch.scenes]
    assert {len(s.objects) for s in batch.scenes} == {1, 2}


def test_same_seed_same_data_other_seed_other_data(batch):
    again = world.sample_batch(np.random.default_rng(1234), 48)
    assert again.scenes == batch.scenes
    assert np.array_equal(again.videos, batch.videos) and np.array_equal(again.audios, batch.audios)
    other = world.sample_batch(np.random.default_rng(1235), 48)
    assert other.captions != batch.captions


def test_single_renders_match_batch(batch):
    scene = batch.scenes[3]
    assert np.array_equal(world.render_image(scene), batch.images[3])
    assert np.array_equal(world.render_video(scene), batch.videos[3])
    assert np.array_equal(world.render_audio(scene), batch.audios[3])


def test_captions_round_trip_and_reject_other_text(batch):
    for scene in batch.scenes:
        assert world.parse_caption(scene.caption) == scene.attributes
        assert world.parse_caption(scene.caption.upper() + ".") == scene.attributes
    for text in ("", "hello", "a purple circle on the left moving right",
                 "a red circle on the left moving right and", "a red circle moving right"):
        assert world.parse_caption(text) is None


def test_two_object_scenes_are_distinct_and_never_overlap(batch):
    for scene in (s for s in batch.scenes if len(s.objects) == 2):
        left, right = scene.objects
        assert (left.position, right.position) == ("left", "right")
        assert left.colour != right.colour
        times = np.linspace(0, world.VIDEO_SECONDS, 41)
        masks = [world._shape_mask(o.shape, *o.track(times)) for o in scene.objects]
        assert not (masks[0] & masks[1]).any()


def test_objects_drawn_in_their_colour_where_they_are(batch):
    for scene, image in zip(batch.scenes, batch.images):
        for obj in scene.objects:
            x, y = (float(v[0]) for v in obj.track(np.zeros(1)))
            assert tuple(image[int(y), int(x)]) == world.COLOURS[obj.colour]
            assert (x < world.IMAGE_SIZE / 2) == (obj.position == "left")


def test_events_are_hits_and_reverse_the_motion(batch):
    eps = 1e-3
    for obj in (o for s in batch.scenes for o in s.objects):
        for t in obj.event_times:
            assert 0 < t < world.VIDEO_SECONDS
            (x0, x1), (y0, y1) = obj.track(np.array([t - eps, t + eps]))
            if obj.motion == "bouncing":
                assert obj.track(np.array([t]))[1][0] == pytest.approx(obj.floor)
                assert y0 > y1 - 0.5 and y1 < obj.floor  # came down, goes back up
            else:
                wall = obj.track(np.array([t]))[0][0]
                assert min(abs(wall - world.WALL_LO), abs(wall - world.WALL_HI)) < 1e-6
                assert x1 == pytest.approx(x0, abs=0.1)  # a reflection: same place, turned back
    first = batch.scenes[0].objects[0]
    xs = first.track(np.linspace(0, 0.2, 3))[0]
    if first.motion != "bouncing":
        assert np.sign(xs[1] - xs[0]) == (1 if first.motion == "moving right" else -1)


def test_audio_pitch_and_onsets_follow_the_scene(batch):
    for scene, audio in zip(batch.scenes, batch.audios):
        if len(scene.objects) != 1:
            continue
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / world.SAMPLE_RATE)
        assert freqs[spectrum.argmax()] == pytest.approx(world.PITCHES[scene.objects[0].colour],
                                                         rel=0.01)
        for t in scene.event_times:
            at = int(t * world.SAMPLE_RATE)
            before = np.abs(audio[at - 400:at]).mean()
            after = np.abs(audio[at:at + 400]).mean()
            assert after > 1.5 * before


def test_max_objects_is_respected():
    rng = np.random.default_rng(5)
    assert all(len(world.sample_scene(rng, max_objects=1).objects) == 1 for _ in range(30))
    with pytest.raises(ValueError):
        world.sample_scene(rng, max_objects=3)
