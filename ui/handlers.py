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
from codi.pipeline.request import MODALITIES, START_MODALITIES
from ui.examples import Example, examples_for
from ui.form import (
    MODEL_SETTING_FIELDS,
    default_form,
    describe_inputs,
    describe_starts,
    request_from_form,
)
from ui.history import MAX_ENTRIES, HistoryEntry, entry_at, gallery_items
from ui.newest import NewestOnly
from ui.panels import RESULT_KINDS, example_rows
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
    line = f"**In:** {used} &nbsp;→&nbsp; **out:** {outputs}"
    try:
        starts = describe_starts(values)
    except CoDiUserError as error:
        return f"{line} &nbsp;·&nbsp; **Check:** {error}"
    return f"{line} &nbsp;·&nbsp; **starting** {starts}" if starts else line


def summarize_newest(newest: NewestOnly) -> Callable[..., Any]:
    """`summarize` for the form's change events, which pass a `summary_stamp` (see ui/newest.py):
    a call older than its session's newest leaves the summary as it is."""

    def summarize_if_newest(request: gr.Request, summary_stamp: float | None = None,
                            **values: Any) -> Any:
        if not newest.is_newest(session_of(request), summary_stamp):
            return gr.skip()
        return summarize(**values)

    return summarize_if_newest


def show_results(outputs: list[str] | None) -> list[dict[str, Any]]:
    """Show the result widgets of the outputs asked for, hide the others."""
    return [gr.update(visible=kind in (outputs or [])) for kind in RESULT_KINDS]


def show_starts(outputs: list[str] | None) -> list[dict[str, Any]]:
    """Each start's group and "Use as start" button, shown while its output is chosen."""
    shown = [gr.update(visible=kind in (outputs or [])) for kind in START_MODALITIES]
    return [*shown, *shown]


def _path_of(item: Any) -> str | None:
    """A result widget's file: a path, a (path, caption) gallery pair or a FileData dict."""
    if isinstance(item, (list, tuple)):
        item = item[0] if item else None
    if isinstance(item, dict):
        item = item.get("path") or (item.get("image") or item.get("video") or {}).get("path")
    return str(item) if item else None


def use_as_start(kind: str) -> Callable[..., list[Any]]:
    """The handler of a "Use as start" button: the result shown (for images, the one selected
    in the gallery, else the first) becomes the start of `kind`, which is kept as an output,
    and the variations panel opens."""

    def use(result: Any, outputs: list[str] | None, selected: int | None = None) -> list[Any]:
        if kind == "image":
            items = list(result or [])
            index = selected if selected is not None and 0 <= selected < len(items) else 0
            result = items[index] if items else None
        path = _path_of(result)
        if path is None:
            raise CoDiUserError(f"There is no {kind} result yet: generate one first.")
        chosen = list(outputs or [])
        return [path, chosen if kind in chosen else [*chosen, kind], gr.update(open=True)]

    use.__name__ = f"use_{kind}_as_start"
    return use


def selected_image(evt: gr.SelectData) -> int:
    """The index of the image selected in the result gallery."""
    return int(evt.index)


def reveal_second() -> list[Any]:
    """A modality's second slot: its group shown, its switch on, its add button hidden."""
    return [gr.update(visible=True), True, gr.update(visible=False)]


def hide_second() -> list[Any]:
    """A modality's second slot: its group hidden, its switch off, its add button shown."""
    return [gr.update(visible=False), False, gr.update(visible=True)]


class StudioHandlers:
    """The handlers that run generations or restore forms, over one `Studio`.

    `fields` are the form's field names in the order the page lays them out (and /generate
    takes them).
    """

    def __init__(self, studio: Studio, fields: list[str]) -> None:
        self.studio = studio
        self.fields = fields

    @property
    def examples(self) -> tuple[Example, ...]:
        """The rows of the example table: those that suit the model serving now."""
        return examples_for(self.studio.model.kind)

    def refresh_model(self, shown_version: int) -> list[Any]:
        """The banner and whether it keeps refreshing; when the model was switched since the
        page last looked (`shown_version`), also the examples and the new model's settings
        defaults (the inputs stay as they are)."""
        studio = self.studio
        head = [studio.status(), gr.Timer(active=studio.preparing)]
        version = studio.model_version
        if shown_version == version:
            return [*head, gr.skip(), gr.skip(), *(gr.skip() for _ in MODEL_SETTING_FIELDS)]
        defaults = default_form(studio.tiny_random, studio.pipeline.defaults)
        return [*head, version, gr.Dataset(samples=example_rows(self.examples)),
                *(defaults[name] for name in MODEL_SETTING_FIELDS)]

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

    def start_previews(self, on: bool, request: gr.Request = None) -> list[Any]:
        """A run starts: with previews on, show the (empty) preview and poll for pictures."""
        self.studio.previews.watch(session_of(request), bool(on))
        return [gr.Timer(active=bool(on)), gr.update(visible=bool(on), value=None,
                                                      label="Live preview")]

    def poll_previews(self, request: gr.Request = None) -> Any:
        """The newest preview of this session's run, or no change."""
        posted = self.studio.previews.take(session_of(request))
        if posted is None:
            return gr.skip()
        return gr.update(value=posted.paths, label=posted.caption)

    def stop_previews(self, request: gr.Request = None) -> list[Any]:
        """The run ended (finished, failed or cancelled): hide the preview, stop polling."""
        self.studio.previews.clear(session_of(request))
        return [gr.Timer(active=False), gr.update(visible=False, value=None)]

    def switch_previews(self, on: bool, request: gr.Request = None) -> list[Any]:
        """The switch: off stops making previews at once (also mid-run); on starts with the
        next run."""
        self.studio.previews.watch(session_of(request), bool(on))
        return self.stop_previews(request) if not on else [gr.skip(), gr.skip()]

    def restore(self, values: dict[str, Any]) -> list[Any]:
        """Every form field, then each second slot's group and add button shown or hidden."""
        shows = [bool(values[f"{m}2_on"]) for m in MODALITIES]
        return [*(values[n] for n in self.fields), *(gr.update(visible=s) for s in shows),
                *(gr.update(visible=not s) for s in shows)]

    def pick_example(self, index: int) -> list[Any]:
        """Load an example's form, clear the results and the status, summarize the form."""
        example = self.examples[index].form(self.studio.tiny_random, self.studio.pipeline.defaults)
        return [*self.restore(example), *result_values(None), "", summarize(**example)]

    def pick_history(self, entries: list[HistoryEntry], evt: gr.SelectData) -> list[Any]:
        """Restore a history entry's form, show its results again, summarize the form."""
        entry = entry_at(entries, evt.index)
        return [*self.restore(entry.form), *result_values(entry.result),
                f"Restored {entry.caption}", summarize(**entry.form)]
