"""Qualitative evaluation sessions: blind A/B comparisons and ratings of CoDi systems.

spec (what to compare) → store (SQLite in a data folder) → grid / batch (generate every cell) →
pairing (what a rater judges next) → stats (win rates, Bradley–Terry, agreement) → archive (zip).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "CODI_DATA_DIR"
DEFAULT_DATA_DIR = Path("codi-data")
DATABASE_NAME = "evaluation.sqlite3"


def data_dir(explicit: Path | str | None = None) -> Path:
    """The data folder: `explicit`, else $CODI_DATA_DIR, else ./codi-data."""
    if explicit is not None and str(explicit).strip():
        return Path(explicit).expanduser()
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def database_path(folder: Path | str | None = None) -> Path:
    """`<data folder>/evaluation.sqlite3`."""
    return data_dir(folder) / DATABASE_NAME


def open_store(folder: Path | str | None = None):
    """The `EvaluationStore` of a data folder (see `data_dir`), created when absent."""
    from codi.evaluation.store import EvaluationStore

    return EvaluationStore(database_path(folder))
