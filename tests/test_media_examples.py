"""The example media are made by code: `python -m codi.media.examples` rewrites them as
committed."""

from __future__ import annotations

from codi.media.examples import make_examples
from codi.store.assets import EXAMPLES_DIR


def test_make_examples_reproduces_the_committed_media(tmp_path):
    written = make_examples(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        p.name for p in EXAMPLES_DIR.iterdir() if p.suffix != ".json")
    for path in written:
        if path.suffix in (".png", ".wav"):
            assert path.read_bytes() == (EXAMPLES_DIR / path.name).read_bytes(), path.name
    assert sum(p.stat().st_size for p in EXAMPLES_DIR.iterdir()) < 500_000
