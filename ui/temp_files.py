"""Where the studio process keeps its temporary files, and when they go (docs/studio.md,
"Temporary files").

Everything goes under one folder per process, `<temp dir>/codi-studio-XXXX/`: the studio's
result folders (`results/`), evaluation exports (`exports/`) and staged uploads (`uploads/`),
and — when `app.py` starts the server and the host has not set GRADIO_TEMP_DIR — Gradio's own
cache (`gradio/`). The folder is removed when the process exits (normal end, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

#: Result folders the studio keeps per session (the history gallery holds as many entries).
RESULTS_PER_SESSION = 12
#: How long an evaluation export stays after it was made: Gradio copies it into its cache as
#: soon as the handler returns, so a few minutes is plenty.
EXPORT_MAX_AGE_S = 300.0

_root: Path | None = None
_lock = threading.Lock()


def process_dir() -> Path:
    """This process's temporary folder, created on first use and removed at exit."""
    global _root
    with _lock:
        if _root is None or not _root.is_dir():
            _root = Path(tempfile.mkdtemp(prefix="codi-studio-"))
            atexit.register(remove_process_dir)
        return _root


def scratch_dir(kind: str) -> Path:
    """A fresh folder under `process_dir()/kind` (kind: results, exports, uploads, ...)."""
    parent = process_dir() / kind
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent))


def prune_older_than(parent: Path, max_age_s: float) -> list[Path]:
    """Remove the folders in `parent` last changed more than `max_age_s` ago; returns them."""
    if not parent.is_dir():
        return []
    cutoff = time.time() - max_age_s
    removed = []
    for child in parent.iterdir():
        try:
            old = child.is_dir() and child.stat().st_mtime < cutoff
        except FileNotFoundError:  # another request removed it first
            continue
        if old:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def export_dir() -> Path:
    """A fresh folder for one evaluation export; exports older than `EXPORT_MAX_AGE_S` go."""
    prune_older_than(process_dir() / "exports", EXPORT_MAX_AGE_S)
    return scratch_dir("exports")


def remove_process_dir() -> None:
    """Remove this process's temporary folder and everything in it (runs at exit)."""
    global _root
    with _lock:
        root, _root = _root, None
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (how hosts stop a container) ends the server like Ctrl-C, so cleanup runs."""
    raise KeyboardInterrupt


def serve_from_process_dir() -> Path:
    """For the server process (`app.py`): Gradio's cache goes under `process_dir()` unless
    GRADIO_TEMP_DIR is set, and SIGTERM shuts down cleanly (Python's default skips `atexit`).
    Call before building the page; returns Gradio's cache folder."""
    cache = os.environ.setdefault("GRADIO_TEMP_DIR", str(process_dir() / "gradio"))
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return Path(cache)
