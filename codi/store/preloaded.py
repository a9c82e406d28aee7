"""The official checkpoint a Space build preloaded, converted once into the model cache.

A Hugging Face Space whose README front matter lists the fp16 files under `preload_from_hub`
has them in its Hugging Face cache when the app starts. `preloaded_files` finds them there
without any network call; each file is checked against its cache blob's name, which for an LFS
file is its sha256; `convert_preloaded` converts them (streaming, through a `.partial` folder,
as `python -m codi download` does) into `default_model_dir()`, the Space's writable cache, so
that "auto" serves the real CoDi from then on.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from codi.convert.sources import OFFICIAL_REPO
from codi.convert.writer import file_sha256
from codi.errors import CoDiUserError
from codi.store.assets import VOCAB_DIR
from codi.store.download import convert_into, repo_paths

#: The variant the README's `preload_from_hub` lists (half the bytes of fp32).
PRELOAD_VARIANT = "fp16"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def preloaded_files(repo_id: str = OFFICIAL_REPO, variant: str | None = PRELOAD_VARIANT,
                    cache_dir: Path | None = None) -> dict[str, Path] | None:
    """Repo path → cached file for every official file of `variant`; None unless all are
    there."""
    found = {}
    for path in repo_paths(variant):
        local = try_to_load_from_cache(repo_id, path, cache_dir=cache_dir)
        if not isinstance(local, str):
            return None
        found[path] = Path(local)
    return found


def verified_sha256(path: str, local: Path) -> str:
    """The file's sha256, checked against its cache blob's name when that is one."""
    actual = file_sha256(local)
    blob = local.resolve().name
    if _SHA256.fullmatch(blob) and blob != actual:
        raise CoDiUserError(
            f"The preloaded {path} is corrupt (sha256 {actual}, expected {blob}). Delete it "
            "from the Hugging Face cache and restart the Space (or run `python -m codi "
            "download`)."
        )
    return actual


def convert_preloaded(
    dest: Path,
    repo_id: str = OFFICIAL_REPO,
    variant: str | None = PRELOAD_VARIANT,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    cache_dir: Path | None = None,
) -> Path | None:
    """Convert the preloaded official files into `dest`; None when they are not all cached."""
    found = preloaded_files(repo_id, variant, cache_dir)
    if found is None:
        return None
    sums = {}
    for path, local in found.items():
        log(f"verifying the preloaded {path} (sha256)")
        sums[path] = verified_sha256(path, local)
    return convert_into(dest, list(found.values()), repo_id, variant, sums, log,
                        vocab_dir=VOCAB_DIR)
