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

from filelock import FileLock
from huggingface_hub import HfApi, hf_hub_download, try_to_load_from_cache
from huggingface_hub.utils import tqdm

from codi.convert.core import convert
from codi.convert.sources import OFFICIAL_FILES, OFFICIAL_REPO, iter_sources
from codi.convert.writer import file_sha256
from codi.errors import CoDiUserError
from codi.models.official_config import OfficialConfig
from codi.store.tokenizers import save_tokenizers

FP16_FOLDER = "checkpoints_fp16"
#: `on_bytes(repo path, bytes done, bytes in all or None)`: how a download's progress is told.
BytesCallback = Callable[[str, int, "int | None"], None]


def repo_paths(variant: str | None) -> list[str]:
    """The official files' paths in the Hub repo (fp16 copies under `checkpoints_fp16/`)."""
    if variant not in (None, "fp16"):
        raise CoDiUserError(f"Unknown variant {variant!r}: leave it out (fp32) or use fp16.")
    return [f"{FP16_FOLDER}/{name}" if variant == "fp16" else name for name in OFFICIAL_FILES]


def expected_checksums(repo_id: str, paths: list[str]) -> dict[str, str]:
    """path → sha256 from the Hub's LFS metadata of each file."""
    return {path: sha for path, (sha, _) in hub_files(repo_id, paths).items()}


def hub_files(repo_id: str, paths: list[str]) -> dict[str, tuple[str, int | None]]:
    """path → (sha256, size in bytes or None) from the Hub's LFS metadata of each file."""
    try:
        infos = HfApi().get_paths_info(repo_id, paths)
    except OSError as error:  # offline mode, HTTP and connection errors are all OSErrors here
        raise CoDiUserError(
            f"Could not read the file list of {repo_id} from the Hugging Face Hub ({error}). "
            "Check the connection (and that HF_HUB_OFFLINE is not set), then run again."
        ) from error
    found = {info.path: (info.lfs.sha256, getattr(info, "size", None))
             for info in infos if getattr(info, "lfs", None)}
    missing = [path for path in paths if path not in found]
    if missing:
        raise CoDiUserError(
            f"{repo_id} has no checksum for {', '.join(missing)} (missing, or not an LFS file)."
        )
    return found


def check_free_space(dest: Path, repo_id: str, files: dict[str, tuple[str, int | None]]) -> None:
    """CoDiUserError when the disk cannot hold the files still to download plus their
    conversion (about as large as the files); unknown sizes are not counted."""
    sizes = {path: size or 0 for path, (_, size) in files.items()}
    to_fetch = sum(size for path, size in sizes.items()
                   if not isinstance(try_to_load_from_cache(repo_id, path), str))
    needed = to_fetch + sum(sizes.values())
    where = _existing_parent(dest)
    free = shutil.disk_usage(where).free
    if needed > free:
        raise CoDiUserError(
            f"The full CoDi needs about {needed / 1e9:.1f} GB free on the disk of {where} "
            f"(downloads {to_fetch / 1e9:.1f} GB, converts {sum(sizes.values()) / 1e9:.1f} GB); "
            f"it has {free / 1e9:.1f} GB. Free some space, or set CODI_HOME to a larger disk, "
            "then start again."
        )


def _existing_parent(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def byte_bar(path: str, on_bytes: BytesCallback) -> type[tqdm]:
    """A tqdm class for `hf_hub_download` that also tells `on_bytes` each update (the bar
    still prints in a terminal, unless huggingface_hub's bars are switched off). It counts
    for itself: a disabled tqdm stops counting."""

    class ReportingBar(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)
            self.expected = int(kwargs["total"]) if kwargs.get("total") else None
            on_bytes(path, self.done, self.expected)

        def update(self, n: float | None = 1) -> bool | None:
            self.done += int(n or 0)
            on_bytes(path, self.done, self.expected)
            return super().update(n)

    return ReportingBar


def fetch_verified(repo_id: str, path: str, sha256: str,
                   on_bytes: BytesCallback | None = None) -> Path:
    """Download one file (resuming) and check its sha256; a corrupt copy is deleted."""
    subfolder, _, name = path.rpartition("/")
    progress = {"tqdm_class": byte_bar(path, on_bytes)} if on_bytes else {}
    try:
        local = Path(hf_hub_download(repo_id, name, subfolder=subfolder or None, **progress))
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
    on_bytes: BytesCallback | None = None,
) -> Path:
    """Fetch, verify and convert the official model into `dest`; returns `dest`.

    The disk is checked for room first; `on_bytes` hears each download's progress."""
    dest = Path(dest).expanduser()
    paths = repo_paths(variant)
    facts = hub_files(repo_id, paths)
    check_free_space(dest, repo_id, facts)
    sums = {path: sha for path, (sha, _) in facts.items()}
    files = []
    for number, path in enumerate(paths, 1):
        log(f"downloading {repo_id}/{path} (file {number} of {len(paths)})")
        files.append(fetch_verified(repo_id, path, sums[path], on_bytes))
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
    the Hub). A lock beside `dest` keeps two processes (the studio and the CLI, say) from
    converting at once; the second finds the first's folder and uses it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.with_name(dest.name + ".lock"))):
        if _converted_from(dest, sums):
            log(f"{dest} was converted from these files already")
            return dest
        return _convert_locked(dest, files, repo_id, variant, sums, log, vocab_dir)


def _converted_from(dest: Path, sums: dict[str, str]) -> bool:
    try:
        index = json.loads((dest / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    return index.get("source_sha256") == dict(sorted(sums.items()))


def _convert_locked(dest: Path, files: list[Path], repo_id: str, variant: str | None,
                    sums: dict[str, str], log: Callable[[str], None],
                    vocab_dir: Path | None) -> Path:
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log(f"converting into {dest}")

    def sources():
        for number, (label, state_dict) in enumerate(iter_sources(files), 1):
            log(f"converting {label} (file {number} of {len(files)})")
            yield label, state_dict

    report = convert(sources(), OfficialConfig.full(), dst=partial)
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
