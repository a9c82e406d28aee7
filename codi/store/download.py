"""`python -m codi download`: fetch the official CoDi files, verify and convert them.

Each file is downloaded with `huggingface_hub` (into its cache, resuming a partial download, with
a progress bar), checked against the sha256 the Hub records for it (its LFS metadata), and the
four files are then converted with the converter into `codi.store.model_store.default_model_dir()`
(or --dest). The conversion is written next to the destination and moved into place at the end,
so an interrupted run never leaves a half-written model that "auto" would pick up.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download

from codi.convert.core import convert
from codi.convert.sources import OFFICIAL_FILES, OFFICIAL_REPO, iter_sources
from codi.convert.writer import file_sha256
from codi.errors import CoDiUserError
from codi.models.official_config import OfficialConfig
from codi.store.tokenizers import save_tokenizers

FP16_FOLDER = "checkpoints_fp16"


def repo_paths(variant: str | None) -> list[str]:
    """The official files' paths in the Hub repo (fp16 copies under `checkpoints_fp16/`)."""
    if variant not in (None, "fp16"):
        raise CoDiUserError(f"Unknown variant {variant!r}: leave it out (fp32) or use fp16.")
    return [f"{FP16_FOLDER}/{name}" if variant == "fp16" else name for name in OFFICIAL_FILES]


def expected_checksums(repo_id: str, paths: list[str]) -> dict[str, str]:
    """path → sha256 from the Hub's LFS metadata of each file."""
    try:
        infos = HfApi().get_paths_info(repo_id, paths)
    except OSError as error:  # offline mode, HTTP and connection errors are all OSErrors here
        raise CoDiUserError(
            f"Could not read the file list of {repo_id} from the Hugging Face Hub ({error}). "
            "Check the connection (and that HF_HUB_OFFLINE is not set), then run again."
        ) from error
    sums = {info.path: info.lfs.sha256 for info in infos if getattr(info, "lfs", None)}
    missing = [path for path in paths if path not in sums]
    if missing:
        raise CoDiUserError(
            f"{repo_id} has no checksum for {', '.join(missing)} (missing, or not an LFS file)."
        )
    return sums


def fetch_verified(repo_id: str, path: str, sha256: str) -> Path:
    """Download one file (resuming) and check its sha256; a corrupt copy is deleted."""
    subfolder, _, name = path.rpartition("/")
    try:
        local = Path(hf_hub_download(repo_id, name, subfolder=subfolder or None))
    except OSError as error:
        raise CoDiUserError(
            f"Downloading {path} from {repo_id} failed ({error}). Run the command again: "
            "it resumes where it stopped."
        ) from error
    print(f"verifying {path} (sha256)", file=sys.stderr)
    actual = file_sha256(local)
    if actual != sha256:
        local.resolve().unlink(missing_ok=True)
        raise CoDiUserError(
            f"{path} is corrupt: its sha256 is {actual}, the Hub says {sha256}. The bad copy was "
            "deleted; run the command again to download it afresh."
        )
    return local


def download(
    dest: Path,
    variant: str | None = None,
    repo_id: str = OFFICIAL_REPO,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Path:
    """Fetch, verify and convert the official model into `dest`; returns `dest`."""
    dest = Path(dest).expanduser()
    paths = repo_paths(variant)
    sums = expected_checksums(repo_id, paths)
    files = []
    for path in paths:
        log(f"downloading {repo_id}/{path}")
        files.append(fetch_verified(repo_id, path, sums[path]))
    return convert_into(dest, files, repo_id, variant, sums, log)


def convert_into(
    dest: Path,
    files: list[Path],
    repo_id: str,
    variant: str | None,
    sums: dict[str, str],
    log: Callable[[str], None],
    vocab_dir: Path | None = None,
) -> Path:
    """Convert the verified official `files` into `dest`, through `dest.partial` (so an
    interrupted run leaves nothing "auto" would pick up); tokenizers from `vocab_dir` (None:
    the Hub)."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log(f"converting into {dest}")
    report = convert(iter_sources(files), OfficialConfig.full(), dst=partial)
    if not report.ok:
        problems = "; ".join((report.errors + [f"unmapped {k}" for k in report.unknown])[:5])
        raise RuntimeError(f"converting the official files failed: {problems}")
    save_tokenizers(partial, vocab_dir=vocab_dir)
    _add_provenance(partial, repo_id, variant, sums)
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    return dest


def _add_provenance(folder: Path, repo_id: str, variant: str | None, sums: dict[str, str]) -> None:
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index.update(
        kind="full", model_id=repo_id, variant=variant or "fp32",
        source_sha256=dict(sorted(sums.items())),
    )
    index_path.write_text(json.dumps(index, indent=1))
