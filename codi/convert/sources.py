"""Finding and opening the official checkpoint files, safely and one at a time."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

#: The released files on the Hub repo `ZinengTang/CoDi` (fp16 copies under `checkpoints_fp16/`).
OFFICIAL_FILES = (
    "CoDi_encoders.pth",
    "CoDi_text_diffuser.pth",
    "CoDi_audio_diffuser_m.pth",
    "CoDi_video_diffuser_8frames.pth",
)
OFFICIAL_REPO = "ZinengTang/CoDi"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
#: Prefixes that training wrappers put in front of every key (DDP, torch.compile, Lightning).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Keys under which a file may nest its state dict.
NESTING_KEYS = ("state_dict", "model", "module")


class CheckpointError(RuntimeError):
    """A checkpoint source that cannot be opened safely (the message says why and what to do)."""


def resolve_sources(source: str, variant: str | None = None) -> list[Path]:
    """The checkpoint files of a local folder, a single file, or a Hub repo id.

    For a Hub repo id the four official files are downloaded (into the Hugging Face cache);
    `variant="fp16"` takes the copies under `checkpoints_fp16/`.
    """
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if not files:
            raise CheckpointError(
                f"{path} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})."
            )
        return files
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        return _download_official(source, variant)
    raise CheckpointError(f"{source!r} is neither a file, a folder, nor a Hub repo id.")


def _download_official(repo_id: str, variant: str | None) -> list[Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    subfolder = "checkpoints_fp16" if variant == "fp16" else None
    try:
        return [
            Path(hf_hub_download(repo_id, name, subfolder=subfolder)) for name in OFFICIAL_FILES
        ]
    except LocalEntryNotFoundError as error:
        raise CheckpointError(
            f"Could not download {repo_id} (offline, or HF_HUB_OFFLINE=1 and not cached). "
            "Download the four .pth files yourself and pass their folder instead."
        ) from error


def open_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """The flat state dict of one file, memory-mapped, with no pickle code execution."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return unwrap_state_dict(load_file(str(path)))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
        raise CheckpointError(
            f"{path.name} cannot be opened safely (torch.load with weights_only=True, mmap=True "
            f"failed: {str(error).splitlines()[0]}). It may contain pickled code, or be a legacy "
            "(non-zip) torch file. Re-save it as a plain state dict or safetensors on a machine "
            "you trust, then convert that."
        ) from error
    return unwrap_state_dict(loaded)


def unwrap_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """Undo common wrappers: a nested {"state_dict": ...} and `module.`-style key prefixes."""
    while isinstance(obj, Mapping) and not _is_flat(obj):
        nested = next((obj[k] for k in NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            raise CheckpointError("the file holds no state dict (no tensors found).")
        obj = nested
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"the file holds a {type(obj).__name__}, not a state dict.")
    return {strip_wrapper_prefixes(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _is_flat(obj: Mapping) -> bool:
    return any(isinstance(v, torch.Tensor) for v in obj.values())


def strip_wrapper_prefixes(key: str) -> str:
    """`module.autokl.x` → `autokl.x` (repeatedly, for nested wrappers)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def iter_sources(paths: list[Path]) -> Iterator[tuple[str, Mapping[str, torch.Tensor]]]:
    """(file name, state dict) for each file, opened only when reached."""
    for path in paths:
        yield path.name, open_state_dict(path)
