"""Which model folder a run uses: a path, or "auto" (configured → downloaded → embedded)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from codi.errors import CoDiUserError
from codi.store.assets import NANO_DIR
from codi.store.tiny_random import TINY_RANDOM_DIR, TINY_RANDOM_KIND, TINY_RANDOM_NOTE

#: A folder holding a converted model, used by "auto" before anything else.
MODEL_DIR_ENV = "CODI_MODEL_DIR"
#: Set by Hugging Face on a Space: "auto" then also converts preloaded official files.
SPACE_ENV = "SPACE_ID"
#: Root of CoDi Studio's own cache (default ~/.cache/codi); models live under `models/`.
HOME_ENV = "CODI_HOME"
FULL_MODEL_NAME = "ZinengTang--CoDi"
AUTO = ("auto", "")
#: Kind names older folders carry → today's.
LEGACY_KINDS = {"embedded-random": TINY_RANDOM_KIND}


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder to open, what kind it is, and a note to show the person (may be empty)."""

    folder: Path
    kind: str
    note: str


def codi_home() -> Path:
    """`$CODI_HOME`, or ~/.cache/codi."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "codi").expanduser()


def default_model_dir() -> Path:
    """Where `python -m codi download` puts the converted full model."""
    return codi_home() / "models" / FULL_MODEL_NAME


def read_model_index(folder: Path) -> dict:
    """`model_index.json` of a converted folder (CoDiUserError if absent or unreadable)."""
    path = Path(folder) / "model_index.json"
    if not path.is_file():
        raise CoDiUserError(
            f"{folder} is not a CoDi model folder (it has no model_index.json). Pass a folder "
            "written by `python -m codi.convert` or `python -m codi download`, or use --model auto."
        )
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CoDiUserError(f"{path} cannot be read ({error}); convert the model again.") from error


def describe(folder: Path) -> ResolvedModel:
    """The kind and note of a converted folder, from its model_index.json."""
    folder = Path(folder).expanduser().resolve()
    index = read_model_index(folder)
    kind = str(index.get("kind", "full"))
    kind = LEGACY_KINDS.get(kind, kind)
    note = str(index.get("note", TINY_RANDOM_NOTE if kind == TINY_RANDOM_KIND else ""))
    return ResolvedModel(folder=folder, kind=kind, note=note)


def resolve_model(spec: str | Path | None = None) -> ResolvedModel:
    """The model folder for `spec`: a path, "full", "nano", "tiny", "embedded", or "auto"/None.

    "auto" takes `$CODI_MODEL_DIR` when set, else the downloaded full model in the cache
    (`default_model_dir()`), else — on a Hugging Face Space whose build preloaded the official
    files — those files converted there once (`codi.store.preloaded`), else the embedded
    default. "full" is the full model (downloaded, or converted from preloaded files) or an
    error saying how to get it. "embedded" is CoDi-Nano (trained by this project, in
    assets/codi-nano) when it is there, else the tiny random-weight model; "nano" and "tiny"
    name one of the two.
    """
    text = "auto" if spec is None else str(spec).strip()
    if text.lower() == "embedded":
        return _embedded()
    if text.lower() == "full":
        return _full()
    if text.lower() == "nano":
        return _bundled(NANO_DIR, "CoDi-Nano", "python -m codi.train nano")
    if text.lower() == "tiny":
        return _bundled(TINY_RANDOM_DIR, "tiny random model",
                        "python -m codi.store.tiny_random build")
    if text.lower() not in AUTO:
        path = Path(text).expanduser()
        if not path.exists():
            raise CoDiUserError(f"Model folder {path} does not exist.")
        return describe(path)
    configured = os.environ.get(MODEL_DIR_ENV)
    if configured:
        try:
            return describe(Path(configured))
        except CoDiUserError as error:
            raise CoDiUserError(f"{MODEL_DIR_ENV}={configured}: {error}") from error
    if (default_model_dir() / "model_index.json").is_file():
        return describe(default_model_dir())
    if os.environ.get(SPACE_ENV):
        try:
            converted = _convert_preloaded()
        except (CoDiUserError, RuntimeError) as error:
            embedded = _embedded()
            return replace(embedded, note=f"{embedded.note} The preloaded full model could "
                                          f"not be converted: {error}".strip())
        if converted is not None:
            return converted
    return _embedded()


def _convert_preloaded() -> ResolvedModel | None:
    """The preloaded official files converted into `default_model_dir()`, when all are cached."""
    from codi.store.preloaded import convert_preloaded

    folder = convert_preloaded(default_model_dir())
    return describe(folder) if folder is not None else None


def _full() -> ResolvedModel:
    """The full model: downloaded, else converted from preloaded files, else a clear error."""
    if (default_model_dir() / "model_index.json").is_file():
        return describe(default_model_dir())
    converted = _convert_preloaded()
    if converted is None:
        raise CoDiUserError(
            f"The full CoDi is not in {default_model_dir()}. Download and convert it with "
            "`python -m codi download --variant fp16` (about 11 GB), then start again."
        )
    return converted


def _embedded() -> ResolvedModel:
    """CoDi-Nano when it is in assets/, else the tiny random model."""
    if (NANO_DIR / "model_index.json").is_file():
        return describe(NANO_DIR)
    return _bundled(TINY_RANDOM_DIR, "embedded model", "python -m codi.store.tiny_random build")


def _bundled(folder: Path, name: str, rebuild: str) -> ResolvedModel:
    if not (folder / "model_index.json").is_file():
        raise CoDiUserError(
            f"The {name} is missing ({folder}); rebuild it with `{rebuild}`, or download the "
            "full model with `python -m codi download`."
        )
    return describe(folder)
