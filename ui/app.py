"""The Gradio Blocks page of CoDi Studio: layout and event wiring.

Handlers turn the form into a `GenerationRequest` (ui.form), hand it to the `Studio` engine
(ui.studio) and show the files it returns. Endpoints for gradio_client: `/generate` (one
parameter per form field, named as in `ui.form.FIELDS`) and `/cancel`; the Evaluate tab
(ui.evaluation) adds the `/eval_*` endpoints.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from codi.errors import CoDiUserError, GenerationCancelled
from codi.pipeline.request import MAX_FRAMES, MAX_IMAGE_SIZE, MODALITIES
from codi.store.assets import EXAMPLES_DIR
from ui.evaluation import Evaluator, build_evaluation_tab, resolve_data_dir
from ui.examples import examples_for
from ui.form import SLOTS, default_form, describe_inputs, request_from_form, slot_modality
from ui.hints import SETTING_HINTS, input_hints
from ui.history import HistoryEntry, entry_at, gallery_items
from ui.studio import Studio, StudioResult
from ui.theme import CSS, THEME

log = logging.getLogger("codi.studio")

LABELS = {"text": "Prompt", "image": "Image", "audio": "Audio", "video": "Video"}
SECOND = {"text": "second prompt", "image": "second image", "audio": "second sound",
          "video": "second video"}
#: Result widgets, in the order /generate returns them after the text.
RESULT_KINDS = ("text", "image", "audio", "video")


def _tolerant_image(component: gr.Image) -> gr.Image:
    """Let files Pillow cannot even open reach codi.media, whose error message says what to do.

    gr.Image(type="filepath") opens the upload with Pillow first and would fail with a bare
    exception; this instance-level wrap passes the path on instead.
    """
    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except (OSError, ValueError):
            if payload is not None and getattr(payload, "path", None):
                return payload.path
            raise

    component.preprocess = preprocess
    return component


def _form_signature(fn: Callable, names: list[str]) -> Callable:
    """Give a `**values` handler one keyword parameter per form field, defaulting to None.

    Gradio reads the signature to document the API: with it, gradio_client callers may leave
    out any field (a component's initial value, or None for an empty file slot, is used).
    """
    special = list(inspect.signature(fn).parameters.values())[:-1]
    fields = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    fn.__signature__ = inspect.Signature([*special, *fields])
    return fn


def _value_component(modality: str, slot: str, label: str) -> gr.Component:
    if modality == "text":
        return gr.Textbox(value="", label=label, lines=2, max_lines=6, elem_id=f"input-{slot}",
                          placeholder="e.g. a dog barking on a beach at sunset")
    if modality == "image":
        return _tolerant_image(gr.Image(label=label, type="filepath", height=240,
                                        sources=["upload", "clipboard"],
                                        elem_id=f"input-{slot}"))
    if modality == "audio":
        return gr.Audio(label=label, type="filepath", sources=["upload", "microphone"],
                        format=None, elem_id=f"input-{slot}")
    return gr.Video(label=label, sources=["upload", "webcam"], format=None, height=240,
                    include_audio=True, elem_id=f"input-{slot}")


def _slot(form: dict[str, gr.Component], slot: str, defaults: dict[str, Any], label: str,
          visible: bool) -> gr.Group:
    """One input: its switch, its weight and its value."""
    with gr.Group(visible=visible) as group:
        with gr.Row(elem_classes="slot-row"):
            form[f"{slot}_on"] = gr.Checkbox(value=defaults[f"{slot}_on"], label="Use",
                                             scale=0, min_width=90, elem_id=f"use-{slot}")
            form[f"{slot}_weight"] = gr.Slider(
                0, 2, value=defaults[f"{slot}_weight"], step=0.05, scale=4, label="Weight",
                elem_id=f"weight-{slot}")
        form[slot] = _value_component(slot_modality(slot), slot, label)
    return group


def _inputs_panel(form, defaults, hints) -> tuple[dict[str, gr.Group], dict[str, gr.Button],
                                                  dict[str, gr.Button]]:
    """One tab per modality: a first slot, and a second one revealed by a button."""
    groups, adds, removes = {}, {}, {}
    with gr.Tabs():
        for modality in MODALITIES:
            with gr.Tab(LABELS[modality].replace("Prompt", "Text"), id=f"tab-{modality}"):
                _slot(form, modality, defaults, LABELS[modality], True)
                gr.Markdown(hints[modality], elem_classes="hint")
                second = f"{modality}2"
                adds[modality] = gr.Button(f"+ Add a {SECOND[modality]}", size="sm",
                                           variant="secondary", visible=not defaults[
                                               f"{second}_on"])
                groups[modality] = _slot(form, second, defaults,
                                         SECOND[modality].capitalize(), defaults[f"{second}_on"])
                with groups[modality]:
                    removes[modality] = gr.Button(f"Remove the {SECOND[modality]}", size="sm")
                if modality == "video":
                    form["video_soundtrack"] = gr.Checkbox(
                        value=defaults["video_soundtrack"],
                        label="Also use each video's own soundtrack as an audio input")
    return groups, adds, removes


def _settings_panel(form, defaults, studio: Studio) -> None:
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        with gr.Row():
            form["steps"] = gr.Slider(1, 200, value=defaults["steps"], step=1, label="Steps",
                                      info=SETTING_HINTS["steps"])
            form["guidance_scale"] = gr.Slider(0, 20, value=defaults["guidance_scale"],
                                               step=0.5, label="Guidance scale",
                                               info=SETTING_HINTS["guidance_scale"])
        form["negative_text"] = gr.Textbox(label="Negative prompt", lines=1,
                                           info=SETTING_HINTS["negative_text"])
        with gr.Row():
            form["seed"] = gr.Number(value=defaults["seed"], precision=0, minimum=0,
                                     label="Seed", info="Shows the seed used after a run")
            form["randomize_seed"] = gr.Checkbox(value=defaults["randomize_seed"],
                                                 label="Random seed on every run")
        with gr.Row():
            form["image_size"] = gr.Slider(64, MAX_IMAGE_SIZE, value=defaults["image_size"],
                                           step=64, label="Image size",
                                           info=SETTING_HINTS["image_size"])
            form["num_samples"] = gr.Slider(1, 8, value=defaults["num_samples"], step=1,
                                            label="Samples", info=SETTING_HINTS["num_samples"])
        with gr.Row():
            form["num_frames"] = gr.Slider(1, MAX_FRAMES, value=defaults["num_frames"], step=1,
                                           label="Video frames", info=SETTING_HINTS["num_frames"])
            form["fps"] = gr.Slider(0.5, 30, value=defaults["fps"], step=0.5,
                                    label="Frames per second", info=SETTING_HINTS["fps"])
        with gr.Row():
            form["text_mode"] = gr.Radio(["sample", "greedy"], value=defaults["text_mode"],
                                         label="Text decoding", info=SETTING_HINTS["text_mode"])
            form["temperature"] = gr.Slider(0.1, 2, value=defaults["temperature"], step=0.05,
                                            label="Temperature", info=SETTING_HINTS["temperature"])
            form["max_tokens"] = gr.Slider(2, 256, value=defaults["max_tokens"], step=1,
                                           label="Text length", info=SETTING_HINTS["max_tokens"])
        gr.Markdown(studio.runtime_markdown(), elem_classes="hint", elem_id="runtime-info")


def _result_values(result: StudioResult | None) -> list[Any]:
    """text, images, audio, video, downloads, parameters JSON: what /generate returns first."""
    if result is None:
        return ["", [], None, None, [], ""]
    texts = result.texts
    text = texts[0] if len(texts) == 1 else "\n\n".join(
        f"{i + 1}. {t}" for i, t in enumerate(texts))
    return [text, result.images, result.audio, result.video, result.files,
            json.dumps(result.metadata, indent=2, ensure_ascii=False)]


def _status_line(result: StudioResult) -> str:
    steps = result.metadata["settings"]["steps"]
    line = f"**Done** in {result.seconds:.1f} s · {steps} steps · seed {result.seed}"
    return "\n".join([line, *(f"- {notice}" for notice in result.notices)])


def build_app(studio: Studio | None = None, data_dir: str | Path | None = None) -> gr.Blocks:
    """The page over `studio` (default: `Studio("auto")`, the embedded model offline): the
    studio tab, and the evaluation tab keeping its sessions in `data_dir` (see
    `codi.evaluation.data_dir`)."""
    studio = studio or Studio()
    defaults = default_form(studio.embedded, studio.pipeline.defaults)
    shown_examples = examples_for(studio.model.kind)
    form: dict[str, gr.Component] = {}

    with gr.Blocks(title="CoDi Studio", analytics_enabled=False) as app:
        gr.Markdown("# CoDi Studio\nAny-to-any generation with Composable Diffusion: mix text, "
                    "images, sounds and videos in; get any of them out.", elem_id="studio-header")
        banner = gr.Markdown(studio.status(), elem_id="model-status",
                             elem_classes="embedded" if studio.embedded else None)
        with gr.Tab("Studio", id="studio"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    gr.Markdown("### Inputs")
                    gr.Markdown("Every input that is switched on (**Use**) and filled in joins the "
                                "mix; its **Weight** sets its share. Empty inputs are skipped.",
                                elem_classes="hint")
                    groups, adds, removes = _inputs_panel(form, defaults,
                                                          input_hints(studio.limits))
                    _settings_panel(form, defaults, studio)
                    examples = gr.Dataset(
                        label="Examples: click one to load its inputs, outputs and settings",
                        components=[gr.Textbox(visible=False), gr.Textbox(visible=False)],
                        headers=["Example", "Inputs → outputs"], type="index", layout="table",
                        samples=[[ex.title, ex.flow] for ex in shown_examples], elem_id="examples")
                with gr.Column(scale=6):
                    gr.Markdown("### Outputs")
                    form["outputs"] = gr.CheckboxGroup(
                        list(RESULT_KINDS), value=defaults["outputs"], label="Generate",
                        info="Any non-empty set. Video + audio: the video plays with the "
                             "generated sound.", elem_id="outputs-choice")
                    summary = gr.Markdown(elem_id="inputs-summary")
                    with gr.Row(elem_id="run-row"):
                        run = gr.Button("Generate", variant="primary", scale=3, elem_id="generate")
                        stop = gr.Button("Cancel", variant="stop", scale=1, elem_id="cancel")
                    status = gr.Markdown(label="Status", elem_id="run-status")
                    shown = set(defaults["outputs"])
                    text_out = gr.Textbox(label="Text", lines=3, interactive=False,
                                          visible="text" in shown, elem_id="out-text")
                    image_out = gr.Gallery(label="Image", columns=2, height=340, format="png",
                                           visible="image" in shown, elem_id="out-image")
                    audio_out = gr.Audio(label="Audio", type="filepath", interactive=False,
                                         format=None, visible="audio" in shown, elem_id="out-audio")
                    video_out = gr.Video(label="Video", interactive=False, format=None, height=320,
                                         visible="video" in shown, elem_id="out-video")
                    files_out = gr.File(label="Downloads (PNG, WAV, MP4, TXT with their metadata)",
                                        file_count="multiple", interactive=False,
                                        elem_id="out-files")
                    with gr.Accordion("Generation parameters (JSON)", open=False):
                        params_out = gr.Code(label="Everything needed to reproduce this result",
                                             language="json", interactive=False, max_lines=18,
                                             elem_id="out-params")
            history = gr.State([])
            history_gallery = gr.Gallery(
                label="History of this session: click a result to restore its inputs and settings",
                columns=8, height=190, allow_preview=False, fit_columns=False, interactive=False,
                buttons=[], object_fit="cover", elem_id="history-gallery")
            last_entry = gr.State(None)

            results = [text_out, image_out, audio_out, video_out, files_out, params_out]
            result_widgets = dict(zip(RESULT_KINDS, results[:4], strict=True))
            field_names = list(form)
            slot_inputs = {n: form[n] for n in field_names
                           if n.removesuffix("_weight").removesuffix("_on") in SLOTS
                           or n in ("video_soundtrack", "outputs")}

            def generate(progress=gr.Progress(),  # noqa: B008
                         request: gr.Request = None, **values):
                """Generate the chosen outputs from the inputs that are switched on and filled in.

                Returns text, images, audio, video (with the generated sound when audio was also
                chosen), all files, the parameters as JSON, the seed used and a status line."""
                session = getattr(request, "session_hash", None) or "api"
                try:
                    codi_request = request_from_form(values)
                    progress(0, desc="Reading the inputs and loading the model…")
                    result = studio.generate(codi_request, session, progress)
                except CoDiUserError as error:
                    raise gr.Error(str(error), title="Please check the request") from None
                except GenerationCancelled:
                    raise gr.Error("Generation cancelled; nothing was saved.",
                                   title="Cancelled") from None
                except Exception as error:  # a bug: say so, keep serving
                    log.exception("generation failed")
                    raise gr.Error(f"CoDi Studio hit an internal error ({type(error).__name__}); "
                                   "the server log has the details. Other requests still work.",
                                   title="Internal error") from None
                kept = dict(values, seed=result.seed, randomize_seed=False)
                return [*_result_values(result), result.seed, _status_line(result),
                        HistoryEntry(kept, result, 0)]

            run_event = run.click(
                _form_signature(generate, field_names), inputs_kwargs=form,
                outputs=[*results, form["seed"], status, last_entry],
                api_name="generate", show_progress_on=[status],
            )
            run_event.success(_record, [last_entry, history], [history, history_gallery],
                              api_visibility="private", queue=False).then(
                studio.status, None, banner, api_visibility="private", queue=False)

            def cancel(request: gr.Request = None) -> str:
                """Stop this session's running generation after its current step."""
                session = getattr(request, "session_hash", None) or "api"
                return ("Cancelling after the current step…" if studio.cancel(session)
                        else "Nothing is running.")

            stop.click(cancel, None, status, api_name="cancel", queue=False, cancels=[run_event])

            form["outputs"].change(
                lambda outputs: [gr.update(visible=k in (outputs or [])) for k in RESULT_KINDS],
                form["outputs"], list(result_widgets.values()),
                api_visibility="private", queue=False, show_progress="hidden")

            def summarize(**values) -> str:
                try:
                    used = describe_inputs(values)
                except CoDiUserError as error:
                    return f"**Check:** {error}"
                outputs = ", ".join(values.get("outputs") or []) or "nothing yet — tick an output"
                if not used:
                    return "No inputs yet: type a prompt or add a file (switched on)."
                return f"**In:** {used} &nbsp;→&nbsp; **out:** {outputs}"

            gr.on([c.change for c in slot_inputs.values()], summarize, inputs_kwargs=slot_inputs,
                  outputs=summary, api_visibility="private", queue=False, show_progress="hidden")
            app.load(summarize, inputs_kwargs=slot_inputs, outputs=summary,
                     api_visibility="private", queue=False)

            for modality in MODALITIES:
                second = form[f"{modality}2_on"]
                adds[modality].click(
                    lambda: [gr.update(visible=True), True, gr.update(visible=False)], None,
                    [groups[modality], second, adds[modality]], api_visibility="private",
                    queue=False)
                removes[modality].click(
                    lambda: [gr.update(visible=False), False, gr.update(visible=True)], None,
                    [groups[modality], second, adds[modality]], api_visibility="private",
                    queue=False)

            restore_targets = [*(form[n] for n in field_names), *groups.values(), *adds.values()]

            def restore(values: dict[str, Any]) -> list[Any]:
                shows = [bool(values[f"{m}2_on"]) for m in MODALITIES]
                return [*(values[n] for n in field_names), *(gr.update(visible=s) for s in shows),
                        *(gr.update(visible=not s) for s in shows)]

            def pick_example(index: int) -> list[Any]:
                example = shown_examples[index].form(studio.embedded, studio.pipeline.defaults)
                return [*restore(example), *_result_values(None), ""]

            examples.click(pick_example, examples, [*restore_targets, *results, status],
                           api_visibility="private", queue=False)

            def pick_history(entries: list[HistoryEntry], evt: gr.SelectData) -> list[Any]:
                entry = entry_at(entries, evt.index)
                return [*restore(entry.form), *_result_values(entry.result),
                        f"Restored {entry.caption}"]

            history_gallery.select(pick_history, history, [*restore_targets, *results, status],
                                   api_visibility="private", queue=False)
        with gr.Tab("Evaluate", id="evaluate"):
            build_evaluation_tab(app, Evaluator(data_dir), history)
    return app


def _record(entry: HistoryEntry, history: list[HistoryEntry]):
    """Append a finished generation to the session's history."""
    entry.number = len(history) + 1
    history = [*history, entry]
    return history, gallery_items(history)


def launch_options(data_dir: str | Path | None = None) -> dict[str, Any]:
    """`launch()` arguments every studio launch shares: look, and the files served (the
    examples, and the evaluation media under `data_dir`)."""
    return {"theme": THEME, "css": CSS,
            "allowed_paths": [str(EXAMPLES_DIR), str(resolve_data_dir(data_dir))],
            "favicon_path": None, "show_error": True}
