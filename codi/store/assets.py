"""Where the files shipped in `assets/` live: the bundled models, the vocabularies, the examples."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
#: CoDi-Nano, the trained embedded default (`python -m codi.train nano`).
NANO_DIR = ASSETS_DIR / "codi-nano"
#: The tiny random-weight model (`python -m codi.store.tiny_random build`).
TINY_RANDOM_DIR = ASSETS_DIR / "codi-tiny-random"
#: The tokenizer vocabularies CoDi uses (CLIP, Optimus BERT and GPT-2).
VOCAB_DIR = ASSETS_DIR / "vocab"
#: The studio's example media (`python -m codi.media.examples`).
EXAMPLES_DIR = ASSETS_DIR / "examples"
