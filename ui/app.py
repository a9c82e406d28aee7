"""The Gradio Blocks page of CoDi Studio: the studio tab's layout (ui.panels) wired to its
handlers (ui.handlers), and the Evaluate tab (ui.evaluation).

Handlers turn the form into a `GenerationRequest` (ui.form), hand it to the `Studio` engine
(ui.studio) and show the files it returns. Endpoints for gradio_client: `/generate` (one
parameter per form field, named as in `ui.form.FIELDS`) and `/cancel`; the Evaluate tab
(ui.evaluation) adds the `/eval_*` endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from codi.pipeline.request import MODALITIES, START_MODALITIES
from codi.store.assets import EXAMPLES_DIR
from ui.errors import friendly
from ui.evaluation import Evaluator, build_evaluation_tab, resolve_data_dir
from ui.examples import Example, examples_for
from ui.form import MODEL_SETTING_FIELDS, SLOTS, START_FIELDS, default_form
from ui.handlers import (
    StudioHandlers,
    form_signature,
    hide_second,
    record,
    reveal_second,
    selected_image,
    session_of,
    show_results,
    show_starts,
    summarize,
    summarize_newest,
    use_as_start,
)
from ui.hints import input_hints
from ui.newest import STAMP_JS, NewestOnly
from ui.panels import (
    Form,
    InputsPanel,
    OutputsPanel,
    examples_panel,
    history_gallery,
    inputs_panel,
    outputs_panel,
    settings_panel,
)
from ui.studio import Studio
from ui.theme import CSS, THEME

PRIVATE = {"api_visibility": "private", "queue": False}
#: Seconds between banner refreshes while the full CoDi is fetched in the background.
BANNER_REFRESH_S = 2.0
#: Gradio's cache of served and uploaded files: every 30 minutes, files older than an hour go
#: (and all of them when the server stops). See docs/studio.md, "Temporary files".
DELETE_CACHE = (1800, 3600)


@dataclass
class StudioTab:
    """The studio tab's components, as its panels returned them."""

    form: Form
    inputs: InputsPanel
    examples: gr.Dataset
    outputs: OutputsPanel
    history: gr.State
    history_gallery: gr.Gallery
    last_entry: gr.State
    #: The index of the image selected in the result gallery (None: the first).
    selected_image: gr.State


def _studio_tab(studio: Studio, defaults: dict[str, Any],
                examples: tuple[Example, ...]) -> StudioTab:
    """Lay out the studio tab: inputs, settings and examples left; outputs right; history."""
    form: Form = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            gr.Markdown("### Inputs")
            gr.Markdown("Every input that is switched on (**Use**) and filled in joins the "
                        "mix; its **Weight** sets its share. Empty inputs are skipped.",
                        elem_classes="hint")
            inputs = inputs_panel(form, defaults, input_hints(studio.limits))
            settings_panel(form, defaults, studio.runtime_markdown())
            table = examples_panel(examples)
        with gr.Column(scale=6):
            outputs = outputs_panel(form, defaults)
    history = gr.State([])
    gallery = history_gallery()
    return StudioTab(form, inputs, table, outputs, history, gallery, gr.State(None),
                     gr.State(None))


def _wire_run(tab: StudioTab, handlers: StudioHandlers, studio: Studio,
              banner: gr.Markdown) -> gr.events.Dependency:
    """Generate (recording the result in the history, refreshing the banner) and cancel;
    returns the generate event."""
    out = tab.outputs
    run_event = out.run.click(
        form_signature(friendly(handlers.generate), handlers.fields), inputs_kwargs=tab.form,
        outputs=[*out.results, tab.form["seed"], out.status, tab.last_entry],
        api_name="generate", show_progress_on=[out.status],
    )
    run_event.success(record, [tab.last_entry, tab.history], [tab.history, tab.history_gallery],
                      **PRIVATE).then(studio.status, None, banner, **PRIVATE)
    run_event.then(lambda: None, None, tab.selected_image, **PRIVATE)
    out.stop.click(handlers.cancel, None, out.status, api_name="cancel", queue=False,
                   cancels=[run_event])
    return run_event


def _wire_previews(app: gr.Blocks, tab: StudioTab, handlers: StudioHandlers) -> None:
    """While a run goes on, a timer shows its newest preview; the switch turns them off.
    A page's session wants previews from the moment it loads (API clients never do), so a
    run knows it when it starts. Wired before the run itself, so that the Run click's
    preview handler is answered first; the run's end hides the preview (`build_app`)."""
    out, live = tab.outputs, tab.outputs.previews
    app.load(handlers.switch_previews, live.switch, live.shown, **PRIVATE)
    out.run.click(handlers.start_previews, live.switch, live.shown, **PRIVATE)
    live.timer.tick(handlers.poll_previews, None, live.gallery, **PRIVATE,
                    show_progress="hidden")
    out.stop.click(handlers.stop_previews, None, live.shown, **PRIVATE)
    live.switch.change(handlers.switch_previews, live.switch, live.shown, **PRIVATE)


def _wire_form(app: gr.Blocks, tab: StudioTab) -> None:
    """Show the results asked for, summarize the inputs, reveal and hide second slots."""
    form, inputs = tab.form, tab.inputs
    form["outputs"].change(show_results, form["outputs"], tab.outputs.media, **PRIVATE,
                           show_progress="hidden")
    starts = tab.outputs.starts
    form["outputs"].change(show_starts, form["outputs"],
                           [*starts.groups.values(), *starts.use_buttons.values()], **PRIVATE,
                           show_progress="hidden")
    slot_inputs = {n: c for n, c in form.items()
                   if n.removesuffix("_weight").removesuffix("_on") in SLOTS
                   or n in ("video_soundtrack", "outputs", *START_FIELDS)}
    # A restore sets off one change per field written: only the newest call's summary lands.
    stamp = gr.Number(visible=False)
    gr.on([c.change for c in slot_inputs.values()], summarize_newest(NewestOnly()),
          inputs_kwargs={**slot_inputs, "summary_stamp": stamp}, js=STAMP_JS,
          outputs=tab.outputs.summary, **PRIVATE, show_progress="hidden",
          trigger_mode="always_last")
    app.load(summarize, inputs_kwargs=slot_inputs, outputs=tab.outputs.summary, **PRIVATE)
    for modality in MODALITIES:
        targets = [inputs.groups[modality], form[f"{modality}2_on"], inputs.adds[modality]]
        inputs.adds[modality].click(reveal_second, None, targets, **PRIVATE)
        inputs.removes[modality].click(hide_second, None, targets, **PRIVATE)


def _wire_starts(tab: StudioTab) -> None:
    """"Use as start": a result becomes its output's start file; the gallery's selection is
    remembered so the image selected is the one used."""
    form, out = tab.form, tab.outputs
    out.results[1].select(selected_image, None, tab.selected_image, **PRIVATE)
    widgets = dict(zip(("image", "audio", "video"), out.results[1:4], strict=True))
    for kind in START_MODALITIES:
        extra = [tab.selected_image] if kind == "image" else []
        out.starts.use_buttons[kind].click(
            friendly(use_as_start(kind)), [widgets[kind], form["outputs"], *extra],
            [form[f"start_{kind}"], form["outputs"], out.starts.accordion], **PRIVATE)


def _wire_model_switch(app: gr.Blocks, tab: StudioTab, handlers: StudioHandlers,
                       banner: gr.Markdown) -> None:
    """While the full CoDi is fetched in the background the banner refreshes; once the
    studio switched to it, each page (open or opened later) takes its examples and settings
    defaults."""
    studio = handlers.studio
    shown = gr.State(studio.model_version)
    timer = gr.Timer(BANNER_REFRESH_S, active=studio.preparing)
    targets = [banner, timer, shown, tab.examples, *(tab.form[n] for n in MODEL_SETTING_FIELDS)]
    app.load(handlers.refresh_model, shown, targets, **PRIVATE)
    timer.tick(handlers.refresh_model, shown, targets, **PRIVATE, show_progress="hidden")


def _wire_restore(tab: StudioTab, handlers: StudioHandlers) -> None:
    """Examples and history entries load their form (and results) back into the page."""
    inputs = tab.inputs
    targets = [*(tab.form[n] for n in handlers.fields), *inputs.groups.values(),
               *inputs.adds.values(), *tab.outputs.results, tab.outputs.status,
               tab.outputs.summary]
    tab.examples.click(handlers.pick_example, tab.examples, targets, **PRIVATE)
    tab.history_gallery.select(handlers.pick_history, tab.history, targets, **PRIVATE)


def build_app(studio: Studio | None = None, data_dir: str | Path | None = None) -> gr.Blocks:
    """The page over `studio` (default: `Studio("auto")`, the embedded model offline): the
    studio tab, and the evaluation tab keeping its sessions in `data_dir` (see
    `codi.evaluation.data_dir`)."""
    studio = studio or Studio()
    defaults = default_form(studio.tiny_random, studio.pipeline.defaults)
    with gr.Blocks(title="CoDi Studio", analytics_enabled=False,
                   delete_cache=DELETE_CACHE) as app:
        gr.Markdown("# CoDi Studio\nAny-to-any generation with Composable Diffusion: mix text, "
                    "images, sounds and videos in; get any of them out.", elem_id="studio-header")
        banner = gr.Markdown(studio.status(), elem_id="model-status",
                             elem_classes="tiny-random" if studio.tiny_random else None)
        with gr.Tab("Studio", id="studio"):
            examples = examples_for(studio.model.kind)
            tab = _studio_tab(studio, defaults, examples)
            handlers = StudioHandlers(studio, list(tab.form))
            _wire_previews(app, tab, handlers)
            run_event = _wire_run(tab, handlers, studio, banner)
            run_event.then(handlers.stop_previews, None, tab.outputs.previews.shown, **PRIVATE)
            _wire_form(app, tab)
            _wire_starts(tab)
            _wire_restore(tab, handlers)
            _wire_model_switch(app, tab, handlers, banner)
        with gr.Tab("Evaluate", id="evaluate"):
            build_evaluation_tab(app, Evaluator(data_dir), tab.history)
        app.unload(_forget_session(studio))
    return app


def _forget_session(studio: Studio) -> Callable[[gr.Request], None]:
    """When a page closes (or a client disconnects), its history is gone: so are its files."""

    def forget(request: gr.Request) -> None:
        studio.forget(session_of(request))

    return forget


def launch_options(data_dir: str | Path | None = None) -> dict[str, Any]:
    """`launch()` arguments every studio launch shares: look, and the files served (the
    examples, and the evaluation media under `data_dir`)."""
    return {"theme": THEME, "css": CSS,
            "allowed_paths": [str(EXAMPLES_DIR), str(resolve_data_dir(data_dir))],
            "favicon_path": None, "show_error": True}
