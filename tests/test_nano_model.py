"""The shipped CoDi-Nano (assets/codi-nano): complete, hashed, the default, draws the world."""

from __future__ import annotations

import json

import pytest

from codi.convert.registry import all_specs
from codi.convert.writer import file_sha256
from codi.nano import world
from codi.nano.evaluate import PipelineGenerator, prompt_scenes
from codi.nano.probes import probe_image
from codi.store.assets import NANO_DIR
from codi.store.model_store import resolve_model
from codi.store.weights import available_components

pytestmark = pytest.mark.skipif(
    not (NANO_DIR / "model_index.json").is_file(),
    reason="assets/codi-nano/ is not in this checkout (python -m codi.train nano makes it)",
)


def test_folder_is_complete_hashed_and_says_what_it_is():
    info = json.loads((NANO_DIR / "model_index.json").read_text())
    assert info["kind"] == "nano" and "CoDi-Nano" in info["note"]
    names = sorted(spec.name for spec in all_specs())
    assert available_components(NANO_DIR) == names
    for name in names:
        (weights,) = (NANO_DIR / name).glob("*.safetensors")
        assert info["weights_sha256"][name] == file_sha256(weights)
    assert info["defaults"]["image_size"] == world.IMAGE_SIZE
    assert info["training"]["training_hours"] > 0


def test_it_is_the_default_model(monkeypatch, tmp_path):
    monkeypatch.setenv("CODI_HOME", str(tmp_path))  # no downloaded full model
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)
    resolved = resolve_model("auto")
    assert resolved.folder == NANO_DIR and resolved.kind == "nano"


@pytest.fixture(scope="module")
def generator():
    from codi.pipeline.codi_pipeline import CoDiPipeline

    return PipelineGenerator(CoDiPipeline.from_pretrained(NANO_DIR))


@pytest.mark.parametrize("index", [0, 1])
def test_text_to_image_draws_the_named_colour(generator, index):
    """Seed 0 at the model's defaults, on the evaluation's first prompts: the probe finds an object
    of the prompt's colour (the evaluation measured colour right in 20 of 20 prompts; shape and
    position are weaker, see docs/nano.md)."""
    scene = prompt_scenes(index + 1)[index]
    image = generator.generate(scene, "text", ["image"], seed=0)["image"]
    blobs = probe_image(image)
    assert blobs, f"the probe found no world object for {scene.caption!r}"
    assert max(blobs, key=lambda b: b.area).attributes.colour == scene.objects[0].colour


def test_text_to_audio_sounds_the_named_colour(generator):
    """Seed 0 at the model's defaults, on the evaluation's first eight prompts: the audio probe
    hears the prompt's colour (its pitch) among the sounds in at least five (text→audio colour
    with seed 0 for every prompt, as here, was 0.65 on 20 prompts; 0.87 on 60 with per-prompt
    seeds, see docs/nano.md; chance is two of eight)."""
    from codi.nano.probes import probe_audio

    heard = 0
    for scene in prompt_scenes(8):
        audio = generator.generate(scene, "text", ["audio"], seed=0)["audio"]
        heard += scene.objects[0].colour in {o.colour for o in probe_audio(audio).objects}
    assert heard >= 5, f"the prompt's colour was heard in only {heard} of 8 sounds"


def test_image_to_text_names_the_pictured_colour(generator):
    """Seed 0 at the model's defaults, the evaluation's first eight scenes as pictures: the caption
    names the pictured object's colour in at least five (measured: six; the model before the
    attribute-head Optimus named it in none, see docs/nano.md)."""
    from codi.nano.probes import probe_caption

    named = 0
    for scene in prompt_scenes(8):
        caption = generator.generate(scene, "image", ["text"], seed=0)["text"]
        found = probe_caption(caption)
        named += bool(found) and found[0].colour == scene.objects[0].colour
    assert named >= 5, f"the pictured colour was named in only {named} of 8 captions"


def test_caption_tokens_tell_colour_shape_and_position_apart(generator):
    """The shipped text tower over the 72 one-object captions: a leave-one-out nearest-centroid
    reader of the tokens gets colour, shape and position right in at least 85% each (measured:
    100 / 100 / 90%, position 65 of 72 captions — the margin keeps one caption flipping on other
    hardware from failing it; chance is 25–50%. Motion is 33%, chance: a known miss, see
    docs/nano.md)."""
    from codi.train.align import caption_token_readout

    pipeline = generator.pipeline
    readout = caption_token_readout(pipeline.component("clip_text"), pipeline.tokenizers["clip"])
    assert min(readout["colour"], readout["shape"], readout["position"]) >= 0.85, readout
