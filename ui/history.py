"""This session's results: the entries behind the history gallery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ui.temp_files import RESULTS_PER_SESSION

if TYPE_CHECKING:
    from ui.studio import StudioResult

#: Most entries a page's history holds (the oldest drops out): as many as the result folders
#: the studio keeps per session, so every entry shown can still be restored.
MAX_ENTRIES = RESULTS_PER_SESSION


@dataclass
class HistoryEntry:
    """One finished generation: the form that asked for it and the files it produced."""

    form: dict[str, Any]
    result: StudioResult
    number: int

    @property
    def caption(self) -> str:
        inputs = "+".join(dict.fromkeys(i["modality"] for i in self.result.metadata["inputs"]))
        outputs = "+".join(self.result.outputs)
        return f"#{self.number} {inputs} → {outputs} · seed {self.result.seed}"


def gallery_items(history: list[HistoryEntry]) -> list[tuple[str, str]]:
    """(thumbnail, caption) pairs, newest first."""
    return [(entry.result.thumbnail, entry.caption) for entry in reversed(history)]


def entry_at(history: list[HistoryEntry], gallery_index: int) -> HistoryEntry:
    """The entry shown at a gallery position (the gallery lists newest first)."""
    return history[len(history) - 1 - gallery_index]
