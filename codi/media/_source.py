"""Checks shared by all loaders: does the input exist, is it a file, is it within the size limit."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codi.errors import CoDiUserError
from codi.media.limits import MediaLimits

FileSource = str | os.PathLike | bytes


def label_of(src: object) -> str:
    """Names the input in messages written as "The <kind> <label> ...": the file name, or
    "you uploaded" for in-memory bytes."""
    if isinstance(src, (str, os.PathLike)):
        return f"'{Path(src).name}'"
    return "you uploaded"


def check_file_source(src: FileSource, limits: MediaLimits, kind: str) -> str:
    """Validate a path or byte string against the size limit; returns its label for messages."""
    label = label_of(src)
    if isinstance(src, bytes):
        size = len(src)
    else:
        path = Path(src)
        if not path.exists():
            raise CoDiUserError(f"The {kind} file {label} does not exist. Check the path.")
        if not path.is_file():
            raise CoDiUserError(f"The path {label} is not a file. Give the path of a {kind} file.")
        size = path.stat().st_size
    if size == 0:
        raise CoDiUserError(f"The {kind} {label} is empty (0 bytes). Choose another file.")
    if size > limits.max_file_bytes:
        raise CoDiUserError(
            f"The {kind} {label} is {size / 2**20:.1f} MiB; the limit is "
            f"{limits.max_file_bytes / 2**20:.1f} MiB. Use a smaller or shorter file."
        )
    return label


@contextmanager
def as_path(src: FileSource, suffix: str = "") -> Iterator[Path]:
    """Yield a filesystem path for `src`; byte strings go to a temporary file removed afterwards."""
    if not isinstance(src, bytes):
        yield Path(src)
        return
    with tempfile.TemporaryDirectory(prefix="codi-media-") as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(src)
        yield path
