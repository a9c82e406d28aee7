"""Ready-made requests over the media in assets/examples/ (made by
`python -m codi.media.examples`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codi.store.assets import EXAMPLES_DIR
from ui.form import SLOTS, complete_form, slot_modality


@dataclass(frozen=True)
class Example:
    """A titled set of form values; file fields name files in EXAMPLES_DIR."""

    title: str
    values: dict[str, Any] = field(default_factory=dict)

    def form(self, tiny_random: bool = False, model_defaults: dict | None = None) -> dict[str, Any]:
        values = dict(self.values)
        for slot in SLOTS:
            if slot_modality(slot) != "text" and values.get(slot):
                values[slot] = str(EXAMPLES_DIR / values[slot])
        return complete_form(values, tiny_random, model_defaults)

    def files(self) -> list[Path]:
        return [EXAMPLES_DIR / v for k, v in self.values.items()
                if k in SLOTS and slot_modality(k) != "text"]

    @property
    def flow(self) -> str:
        form = self.form()
        used = Counter(slot_modality(s) for s in SLOTS if form[f"{s}_on"] and form[s])
        inputs = " + ".join(f"{n}×{m}" if n > 1 else m for m, n in used.items())
        return f"{inputs} → {' + '.join(form['outputs'])}"


EXAMPLES: tuple[Example, ...] = (
    Example("A lighthouse at sunset", {"text": "a lighthouse on a cliff at sunset, oil painting",
                                       "outputs": ["image"]}),
    Example("Describe a picture", {"image": "sunset.png", "outputs": ["text"]}),
    Example("Picture + prompt → clip with sound", {
        "text": "waves rolling onto a sandy beach", "image": "sunset.png", "image_weight": 0.6,
        "outputs": ["video", "audio"]}),
    Example("What does a bell look like?", {"audio": "bell.wav", "outputs": ["image", "text"]}),
    Example("Re-score a video", {"video": "bouncing_ball.mp4", "video_soundtrack": True,
                                 "outputs": ["audio", "text"]}),
    Example("Two prompts, two pictures → everything", {
        "text": "a rainy city street at night", "text2": "a jazz saxophone solo",
        "text2_on": True, "text2_weight": 0.5, "image": "city.png", "image2": "sunset.png",
        "image2_on": True, "image2_weight": 0.3, "outputs": ["text", "image", "audio", "video"]}),
)

#: CoDi-Nano knows only its shapes world: coloured circles, squares and triangles, their motions
#: and their sounds (docs/nano.md).
NANO_EXAMPLES: tuple[Example, ...] = (
    Example("A red circle, bouncing", {"text": "a red circle on the left bouncing",
                                       "outputs": ["image", "audio"]}),
    Example("Describe a picture", {"image": "shapes_picture.png", "outputs": ["text"]}),
    Example("What does this sound look like?", {"audio": "shapes_sound.wav",
                                                "outputs": ["image", "text"]}),
    Example("Clip with its sound", {"text": "a green square on the right moving left",
                                    "outputs": ["video", "audio"]}),
    Example("Re-score a clip", {"video": "shapes_clip.mp4", "outputs": ["audio", "text"]}),
    Example("Everything from one prompt", {
        "text": "a yellow triangle on the left moving right",
        "outputs": ["text", "image", "audio", "video"]}),
)


def examples_for(model_kind: str) -> tuple[Example, ...]:
    """The examples that suit a model: the shapes world for CoDi-Nano, else the general ones."""
    return NANO_EXAMPLES if model_kind == "nano" else EXAMPLES
