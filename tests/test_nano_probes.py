"""The model-free probes read the world's own renders, and shrug at noise."""

from __future__ import annotations

import numpy as np
import pytest

from codi.nano import probes, world
from codi.nano.evaluate import EVENT_WINDOW_S

UNKNOWN = world.UNKNOWN


def _fraction(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def singles() -> world.WorldBatch:
    return world.sample_batch(np.random.default_rng(987_654), 100, max_objects=1)


@pytest.fixture(scope="module")
def readings(singles):
    return [(probes.probe_image(im), probes.probe_video(v), probes.probe_audio(a))
            for im, v, a in zip(singles.images, singles.videos, singles.audios)]


def test_image_probe_reads_single_objects(singles, readings):
    truth = [s.objects[0] for s in singles.scenes]
    found = [r[0][0].attributes if len(r[0]) == 1 else None for r in readings]
    for attribute in ("colour", "shape", "position"):
        assert _fraction(f is not None and getattr(f, attribute) == getattr(t, attribute)
                         for f, t in zip(found, truth)) >= 0.98, attribute


def test_video_probe_reads_attributes_and_events(singles, readings):
    truth = [s.objects[0] for s in singles.scenes]
    found = [r[1][0] if len(r[1]) == 1 else None for r in readings]
    for attribute in ("colour", "shape", "position", "motion"):
        assert _fraction(f is not None and getattr(f.attributes, attribute) == getattr(t, attribute)
                         for f, t in zip(found, truth)) >= 0.98, attribute
    low, high = EVENT_WINDOW_S

    def events_match(track, obj) -> bool:
        visible = [t for t in obj.event_times if low < t < high]
        seen = track.event_times if track else ()
        return len(seen) == len(visible) and all(abs(a - b) < 0.06 for a, b in zip(seen, visible))

    assert _fraction(events_match(f, t) for f, t in zip(found, truth)) >= 0.98


def test_audio_probe_reads_pitch_timbre_and_onsets(singles, readings):
    truth = [s.objects[0] for s in singles.scenes]
    heard = [r[2] for r in readings]
    for attribute in ("colour", "shape"):
        assert _fraction(len(h.objects) == 1 and getattr(h.objects[0], attribute)
                         == getattr(t, attribute) for h, t in zip(heard, truth)) >= 0.98, attribute
    assert _fraction(len(h.onsets) == len(t.event_times)
                     and all(abs(a - b) < 0.03 for a, b in zip(h.onsets, t.event_times))
                     for h, t in zip(heard, truth)) >= 0.98


def test_caption_probe(singles):
    assert all(probes.probe_caption(c) == s.attributes
               for c, s in zip(singles.captions, singles.scenes))
    assert probes.probe_caption("a cat on a mat") == ()


def test_two_object_scenes():
    batch = world.sample_batch(np.random.default_rng(24_680), 30, max_objects=2)
    pairs = [(s, im, v, a) for s, im, v, a in zip(batch.scenes, batch.images, batch.videos,
                                                  batch.audios) if len(s.objects) == 2]
    image_ok = video_ok = audio_ok = 0
    for scene, image, video, audio in pairs:
        image_ok += tuple(b.attributes for b in probes.probe_image(image)) == tuple(
            world.ObjectAttributes(o.colour, o.shape, o.position, UNKNOWN) for o in scene.objects)
        video_ok += tuple(t.attributes for t in probes.probe_video(video)) == scene.attributes
        heard = {(o.colour, o.shape) for o in probes.probe_audio(audio).objects}
        audio_ok += heard == {(o.colour, o.shape) for o in scene.objects}
    assert len(pairs) >= 10
    assert min(image_ok, video_ok, audio_ok) / len(pairs) >= 0.9


def test_probes_return_unknown_on_noise():
    rng = np.random.default_rng(0)
    noise_image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert probes.probe_image(noise_image) == ()
    assert probes.probe_image(np.zeros((64, 64, 3), np.uint8)) == ()
    assert probes.probe_image(np.zeros((64, 64), np.uint8)) == ()
    assert probes.probe_video(rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)) == ()
    assert probes.probe_video(np.zeros((1, 64, 64, 3), np.uint8)) == ()
    heard = probes.probe_audio(rng.normal(0, 0.3, world.AUDIO_SAMPLES).astype(np.float32))
    assert heard.objects == ()
    assert probes.probe_audio(np.zeros(world.AUDIO_SAMPLES, np.float32)) == probes.AudioReading(
        (), ())
    assert probes.probe_audio(np.full(100, np.nan, np.float32)) == probes.AudioReading((), ())
    static = np.repeat(world.render_image(world.sample_scene(rng, 1))[None], 8, axis=0)
    (track,) = probes.probe_video(static)
    assert track.attributes.motion == UNKNOWN and track.event_times == ()
