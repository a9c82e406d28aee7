"""The studio tab's event handlers: form values in, files and strings out.

`StudioHandlers` binds the ones that need the engine (ui.studio.Studio) to it; the others are
plain functions of the form values. ui.app wires them to the panels of ui.panels.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import gradio as gr

from codi.errors import CoDiUserError
from codi.pipeline.request import MODALITIES
from ui.examples import Example
from ui.form import describe_inputs, request_from_form
from ui.history import MAX_ENTRIES, HistoryEntry, entry_at, gallery_items
from ui.panels import RESULT_KINDS
from ui.studio import Studio, StudioResult


def form_signature(fn: Callable, names: list[str]) -> Callable:
    """Give a `**values` handler one keyword parameter per form field, defaulting to None.

    Gradio reads the signature to document the API: with it, gradio_client callers may leave
    out any field (a component's initial value, or None for an empty file slot, is used).
    """
    special = list(inspect.signature(fn).parameters.values())[:-1]
    fields = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    fn.__signature__ = inspect.Signature([*special, *fields])
    return fn


def session_of(request: gr.Request | None) -> str:
    """The browser session a request comes from ("api" for a gradio_client call without one)."""
    return getattr(request, "session_hash", None) or "api"


def result_values(result: StudioResult | None) -> list[Any]:
    """text, images, audio, video, downloads, parameters JSON: what /generate returns first."""
    if result is None:
        return ["", [], None, None, [], ""]
    texts = result.texts
    text = texts[0] if len(texts) == 1 else "\n\n".join(
        f"{i + 1}. {t}" for i, t in enumerate(texts))
    return [text, result.images, result.audio, result.video, result.files,
            json.dumps(result.metadata, indent=2, ensure_ascii=False)]


def status_line(result: StudioResult) -> str:
    steps = result.metadata["settings"]["steps"]
    line = f"**Done** in {result.seconds:.1f} s · {steps} steps · seed {result.seed}"
    return "\n".join([line, *(f"- {notice}" for notice in result.notices)])


def record(entry: HistoryEntry, history: list[HistoryEntry]):
    """Append a finished generation to the session's history (the newest `MAX_ENTRIES`)."""
    entry.number = (history[-1].number if history else 0) + 1
    history = [*history, entry][-MAX_ENTRIES:]
    return history, gallery_items(history)


def summarize(**values: Any) -> str:
    """The inputs that join the mix and the outputs asked for, as one line."""
    try:
        used = describe_inputs(values)
    except CoDiUserError as error:
        return f"**Check:** {error}"
    outputs = ", ".join(values.get("outputs") or []) or "nothing yet — tick an output"
    if not used:
        return "No inputs yet: type a prompt or add a file (switched on)."
    return f"**In:** {used} &nbsp;→&nbsp; **out:** {outputs}"


def show_results(outputs: list[str] | None) -> list[dict[str, Any]]:
    """Show the result widgets of the outputs asked for, hide the others."""
    return [gr.update(visible=kind in (outputs or [])) for kind in RESULT_KINDS]


def reveal_second() -> list[Any]:
    """A modality's second slot: its group shown, its switch on, its add button hidden."""
    return [gr.update(visible=True), True, gr.update(visible=False)]


def hide_second() -> list[Any]:
    """A modality's second slot: its group hidden, its switch off, its add button shown."""
    return [gr.update(visible=False), False, gr.update(visible=True)]


class StudioHandlers:
    """The handlers that run generations or restore forms, over one `Studio`.

    `fields` are the form's field names in the order the page lays them out (and /generate
    takes them); `examples` are the rows of the example table.
    """

    def __init__(self, studio: Studio, examples: tuple[Example, ...], fields: list[str]) -> None:
        self.studio = studio
        self.examples = examples
        self.fields = fields

    def generate(self, progress=gr.Progress(),  # noqa: B008
                 request: gr.Request = None, **values: Any) -> list[Any]:
        """Generate the chosen outputs from the inputs that are switched on and filled in.

        Returns text, images, audio, video (with the generated sound when audio was also
        chosen), all files, the parameters as JSON, the seed used and a status line."""
        codi_request = request_from_form(values)
        progress(0, desc="Reading the inputs and loading the model…")
        result = self.studio.generate(codi_request, session_of(request), progress)
        kept = dict(values, seed=result.seed, randomize_seed=False)
        return [*result_values(result), result.seed, status_line(result),
                HistoryEntry(kept, result, 0)]

    def cancel(self, request: gr.Request = None) -> str:
        """Stop this session's running generation after its current step."""
        return ("Cancelling after the current step…" if self.studio.cancel(session_of(request))
                else "Nothing is running.")

    def restore(self, values: dict[str, Any]) -> list[Any]:
        """Every form field, then each second slot's group and add button shown or hidden."""
        shows = [bool(values[f"{m}2_on"]) for m in MODALITIES]
        return [*(values[n] for n in self.fields), *(gr.update(visible=s) for s in shows),
                *(gr.update(visible=not s) for s in shows)]

    def pick_example(self, index: int) -> list[Any]:
        """Load an example's form and clear the results and the status."""
        example = self.examples[index].form(self.studio.tiny_random, self.studio.pipeline.defaults)
        return [*self.restore(example), *result_values(None), ""]

    def pick_history(self, entries: list[HistoryEntry], evt: gr.SelectData) -> list[Any]:
        """Restore a history entry's form and show its results again."""
        entry = entry_at(entries, evt.index)
        return [*self.restore(entry.form), *result_values(entry.result),
                f"Restored {entry.caption}"]
