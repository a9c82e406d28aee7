"""The live previews of each browser session: written by a running generation, polled by the page.

A generation posts a `Preview` every few steps (`codi.pipeline.previews`); the board saves its
pictures as files in the session's folder (only the newest set is kept) and hands them out once
to the page's timer. Sessions that have not asked for previews (API clients) get none, so their
generations make none.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codi.pipeline.previews import Preview
from ui.temp_files import scratch_dir


@dataclass
class PostedPreview:
    """A preview as the page shows it: its picture files and a caption."""

    paths: list[str]
    caption: str


class PreviewBoard:
    """Thread-safe: generations post from worker threads while the page polls."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder else scratch_dir("previews")
        self._watching: set[str] = set()
        self._posted: dict[str, PostedPreview] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def watch(self, session: str, on: bool) -> None:
        """Start (or stop) making previews for `session`'s generations."""
        with self._lock:
            (self._watching.add if on else self._watching.discard)(session)

    def watching(self, session: str) -> bool:
        with self._lock:
            return session in self._watching

    def sink(self, session: str) -> Callable[[Preview], None] | None:
        """The `on_preview` of a generation for `session`; None when it wants no previews."""
        if not self.watching(session):
            return None

        def post(preview: Preview) -> None:
            if self.watching(session):  # switched off mid-run: stop saving
                self.post(session, preview)

        return post

    def _session_folder(self, session: str) -> Path:
        safe = "".join(c for c in session if c.isalnum() or c in "-_")[:64] or "session"
        return self.folder / safe

    def post(self, session: str, preview: Preview) -> None:
        """Save `preview`'s pictures (new names, so the page reloads them); drop older ones."""
        with self._lock:
            count = self._counts.get(session, 0) + 1
            self._counts[session] = count
        folder = self._session_folder(session)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for modality, images in preview.images.items():
            for index, image in enumerate(images):
                path = folder / f"{count:05d}-{modality}-{index}.png"
                image.save(path)
                paths.append(str(path))
        for old in folder.glob("*.png"):  # the set before stays: the page may still load it
            if int(old.name.split("-")[0]) < count - 1:
                old.unlink(missing_ok=True)
        caption = f"Live preview · step {preview.step}/{preview.steps}"
        with self._lock:
            if self._counts.get(session) == count:
                self._posted[session] = PostedPreview(paths, caption)

    def take(self, session: str) -> PostedPreview | None:
        """The newest preview not handed out yet, or None."""
        with self._lock:
            return self._posted.pop(session, None)

    def clear(self, session: str) -> None:
        """Forget `session`'s previews and delete their files (its generation ended)."""
        with self._lock:
            self._posted.pop(session, None)
        shutil.rmtree(self._session_folder(session), ignore_errors=True)
