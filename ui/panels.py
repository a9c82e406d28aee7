"""The studio tab's panels: inputs, settings, outputs, examples and history, laid out in the
current Gradio context. Layout only: each builder returns its components; ui.app wires them
to the handlers in ui.handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from codi.pipeline.request import (
    MAX_FRAMES,
    MAX_IMAGE_SIZE,
    MODALITIES,
    SAMPLER_NAMES,
    START_MODALITIES,
)
from ui.examples import Example
from ui.form import slot_modality
from ui.hints import SETTING_HINTS

LABELS = {"text": "Prompt", "image": "Image", "audio": "Audio", "video": "Video"}
SECOND = {"text": "second prompt", "image": "second image", "audio": "second sound",
          "video": "second video"}
#: Result widgets, in the order /generate returns them after the text.
RESULT_KINDS = ("text", "image", "audio", "video")
#: The form as components, by field name (ui.form.FIELDS), in the order they are laid out.
Form = dict[str, gr.Component]


@dataclass
class InputsPanel:
    """Per modality: the second slot's group and the buttons that reveal and hide it."""

    groups: dict[str, gr.Group]
    adds: dict[str, gr.Button]
    removes: dict[str, gr.Button]


@dataclass
class StartsPanel:
    """Variations: per image/audio/video output, the group of its start file and strength
    (shown while that output is chosen), and the "Use as start" button under its result."""

    accordion: gr.Accordion
    groups: dict[str, gr.Group]
    use_buttons: dict[str, gr.Button]


@dataclass
class LivePreviews:
    """The live preview while a generation denoises: its switch, its gallery (shown only
    while a run with previews is going) and the timer that polls for new pictures."""

    switch: gr.Checkbox
    gallery: gr.Gallery
    timer: gr.Timer

    @property
    def shown(self) -> list[gr.Component]:
        """What a run's start and end switch on and off: the timer and the gallery."""
        return [self.timer, self.gallery]


@dataclass
class OutputsPanel:
    """The run buttons, the status and summary lines and the result widgets."""

    summary: gr.Markdown
    run: gr.Button
    stop: gr.Button
    status: gr.Markdown
    #: text, images, audio, video, downloads, parameters JSON: what /generate returns first.
    results: list[gr.Component]
    starts: StartsPanel
    previews: LivePreviews

    @property
    def media(self) -> list[gr.Component]:
        """The widgets of `RESULT_KINDS`, shown only for the outputs asked for."""
        return self.results[:len(RESULT_KINDS)]


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


def _slot(form: Form, slot: str, defaults: dict[str, Any], label: str,
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


def inputs_panel(form: Form, defaults: dict[str, Any], hints: dict[str, str]) -> InputsPanel:
    """One tab per modality: a first slot, and a second one revealed by a button."""
    panel = InputsPanel({}, {}, {})
    with gr.Tabs():
        for modality in MODALITIES:
            with gr.Tab(LABELS[modality].replace("Prompt", "Text"), id=f"tab-{modality}"):
                _slot(form, modality, defaults, LABELS[modality], True)
                gr.Markdown(hints[modality], elem_classes="hint")
                second = f"{modality}2"
                panel.adds[modality] = gr.Button(
                    f"+ Add a {SECOND[modality]}", size="sm", variant="secondary",
                    visible=not defaults[f"{second}_on"])
                group = _slot(form, second, defaults, SECOND[modality].capitalize(),
                              defaults[f"{second}_on"])
                panel.groups[modality] = group
                with group:
                    panel.removes[modality] = gr.Button(f"Remove the {SECOND[modality]}",
                                                        size="sm")
                if modality == "video":
                    form["video_soundtrack"] = gr.Checkbox(
                        value=defaults["video_soundtrack"],
                        label="Also use each video's own soundtrack as an audio input")
    return panel


def _slider(form: Form, defaults: dict[str, Any], name: str, low: float, high: float,
            step: float, label: str) -> None:
    form[name] = gr.Slider(low, high, value=defaults[name], step=step, label=label,
                           info=SETTING_HINTS[name])


def settings_panel(form: Form, defaults: dict[str, Any], runtime_markdown: str) -> None:
    """The generation settings, closed by default, and the runtime options in force."""
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        with gr.Row():
            _slider(form, defaults, "steps", 1, 200, 1, "Steps")
            _slider(form, defaults, "guidance_scale", 0, 20, 0.5, "Guidance scale")
        form["sampler"] = gr.Dropdown(list(SAMPLER_NAMES), value=defaults["sampler"],
                                      label="Sampler", info=SETTING_HINTS["sampler"])
        form["negative_text"] = gr.Textbox(label="Negative prompt", lines=1,
                                           info=SETTING_HINTS["negative_text"])
        with gr.Row():
            form["seed"] = gr.Number(value=defaults["seed"], precision=0, minimum=0,
                                     label="Seed", info="Shows the seed used after a run")
            form["randomize_seed"] = gr.Checkbox(value=defaults["randomize_seed"],
                                                 label="Random seed on every run")
        with gr.Row():
            _slider(form, defaults, "image_size", 64, MAX_IMAGE_SIZE, 64, "Image size")
            _slider(form, defaults, "num_samples", 1, 8, 1, "Samples")
        with gr.Row():
            _slider(form, defaults, "num_frames", 1, MAX_FRAMES, 1, "Video frames")
            _slider(form, defaults, "fps", 0.5, 30, 0.5, "Frames per second")
        with gr.Row():
            form["text_mode"] = gr.Radio(["sample", "greedy"], value=defaults["text_mode"],
                                         label="Text decoding", info=SETTING_HINTS["text_mode"])
            _slider(form, defaults, "temperature", 0.1, 2, 0.05, "Temperature")
            _slider(form, defaults, "max_tokens", 2, 256, 1, "Text length")
        gr.Markdown(runtime_markdown, elem_classes="hint", elem_id="runtime-info")


def example_rows(examples: tuple[Example, ...]) -> list[list[str]]:
    """The example table's rows: title, inputs → outputs."""
    return [[ex.title, ex.flow] for ex in examples]


def examples_panel(examples: tuple[Example, ...]) -> gr.Dataset:
    """The example table; a click loads an example (its index) into the form."""
    return gr.Dataset(
        label="Examples: click one to load its inputs, outputs and settings",
        components=[gr.Textbox(visible=False), gr.Textbox(visible=False)],
        headers=["Example", "Inputs → outputs"], type="index", layout="table",
        samples=example_rows(examples), elem_id="examples")


START_LABELS = {"image": "Start image", "audio": "Start sound", "video": "Start video"}


def starts_panel(form: Form, defaults: dict[str, Any]) -> tuple[gr.Accordion,
                                                                  dict[str, gr.Group]]:
    """Variations: an optional start file and its strength per image/audio/video output."""
    shown = set(defaults["outputs"])
    groups = {}
    with gr.Accordion("Variations: start an output from a file", open=False,
                      elem_id="starts") as accordion:
        gr.Markdown(SETTING_HINTS["start"], elem_classes="hint")
        for modality in START_MODALITIES:
            with gr.Group(visible=modality in shown) as groups[modality]:
                name = f"start_{modality}"
                form[name] = _value_component(modality, name, START_LABELS[modality])
                _slider(form, defaults, f"{name}_strength", 0, 1, 0.05, "Strength")
    return accordion, groups


def _use_button(kind: str, shown: set[str]) -> gr.Button:
    """A "Use as start" button under a media result, shown with it."""
    return gr.Button(f"Use as {START_LABELS[kind].lower()}", size="sm", variant="secondary",
                     visible=kind in shown, elem_id=f"use-start-{kind}")


def _result_widgets(shown: set[str]) -> tuple[list[gr.Component], dict[str, gr.Button]]:
    text = gr.Textbox(label="Text", lines=3, interactive=False, visible="text" in shown,
                      elem_id="out-text")
    image = gr.Gallery(label="Image", columns=2, height=340, format="png",
                       visible="image" in shown, elem_id="out-image")
    use = {"image": _use_button("image", shown)}
    audio = gr.Audio(label="Audio", type="filepath", interactive=False, format=None,
                     visible="audio" in shown, elem_id="out-audio")
    use["audio"] = _use_button("audio", shown)
    video = gr.Video(label="Video", interactive=False, format=None, height=320,
                     visible="video" in shown, elem_id="out-video")
    use["video"] = _use_button("video", shown)
    files = gr.File(label="Downloads (PNG, WAV, MP4, TXT with their metadata)",
                    file_count="multiple", interactive=False, elem_id="out-files")
    with gr.Accordion("Generation parameters (JSON)", open=False):
        params = gr.Code(label="Everything needed to reproduce this result", language="json",
                         interactive=False, max_lines=18, elem_id="out-params")
    return [text, image, audio, video, files, params], use


def outputs_panel(form: Form, defaults: dict[str, Any]) -> OutputsPanel:
    """The outputs choice, the run and cancel buttons, the status line and the results."""
    gr.Markdown("### Outputs")
    form["outputs"] = gr.CheckboxGroup(
        list(RESULT_KINDS), value=defaults["outputs"], label="Generate",
        info="Any non-empty set. Video + audio: the video plays with the generated sound.",
        elem_id="outputs-choice")
    accordion, start_groups = starts_panel(form, defaults)
    summary = gr.Markdown(elem_id="inputs-summary")
    with gr.Row(elem_id="run-row"):
        run = gr.Button("Generate", variant="primary", scale=3, elem_id="generate")
        stop = gr.Button("Cancel", variant="stop", scale=1, elem_id="cancel")
    status = gr.Markdown(label="Status", elem_id="run-status")
    previews = live_previews()
    results, use_buttons = _result_widgets(set(defaults["outputs"]))
    return OutputsPanel(summary, run, stop, status, results,
                        StartsPanel(accordion, start_groups, use_buttons), previews)


#: How often, in seconds, the page asks for a new preview while a run goes on.
PREVIEW_POLL_S = 0.5


def live_previews() -> LivePreviews:
    """The preview switch under the run buttons and the (hidden) preview gallery."""
    switch = gr.Checkbox(value=True, label="Live previews while denoising (image and video)",
                         elem_id="live-previews-on")
    gallery = gr.Gallery(label="Live preview", columns=2, height=220, visible=False,
                         allow_preview=False, interactive=False, buttons=[],
                         elem_id="live-preview")
    return LivePreviews(switch, gallery, gr.Timer(PREVIEW_POLL_S, active=False))


def history_gallery() -> gr.Gallery:
    """This session's results as thumbnails; a click restores one."""
    return gr.Gallery(
        label="History of this session: click a result to restore its inputs and settings",
        columns=8, height=190, allow_preview=False, fit_columns=False, interactive=False,
        buttons=[], object_fit="cover", elem_id="history-gallery")
