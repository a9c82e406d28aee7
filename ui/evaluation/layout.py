"""The Evaluate tab's panels: the session picker, then one inner tab each to create, generate,
rate, read the results and export or import. Layout only: each builder returns its components;
ui.evaluation.tab wires them to the handlers in ui.evaluation.handlers."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from codi.evaluation.spec import DEFAULT_CRITERIA
from codi.pipeline.request import MODALITIES
from ui.evaluation.engine import SIDES
from ui.evaluation.forms import default_systems_json
from ui.evaluation.view import MAX_CRITERIA, VOTES

POLL_SECONDS = 1.0


@dataclass
class SessionBar:
    session: gr.Dropdown
    refresh: gr.Button
    info: gr.Markdown
    #: The id a create or import returned (what their API callers get); it then selects it.
    made: gr.Textbox


@dataclass
class CreatePanel:
    name: gr.Textbox
    typed: gr.Textbox
    uploads: gr.File
    picked: gr.CheckboxGroup
    outputs: gr.CheckboxGroup
    systems: gr.Code
    seeds: gr.Textbox
    criteria: gr.Textbox
    create: gr.Button
    status: gr.Markdown

    def fields(self) -> list[gr.Component]:
        """The inputs of /eval_create, in its parameter order (the history comes last)."""
        return [self.name, self.typed, self.uploads, self.outputs, self.systems, self.seeds,
                self.criteria, self.picked]


@dataclass
class GeneratePanel:
    start: gr.Button
    stop: gr.Button
    generation: gr.Markdown
    timer: gr.Timer


@dataclass
class SideWidgets:
    """One output of the pair: its header (the system name appears after the vote), its media
    (`OUTPUT_KINDS` order), its 1–5 ratings and its comment."""

    header: gr.Markdown
    media: list[gr.Component]
    radios: list[gr.Radio]
    comment: gr.Textbox


@dataclass
class RatePanel:
    rater: gr.Textbox
    begin: gr.Button
    progress: gr.Markdown
    token: gr.State
    compare: gr.Column
    prompt: gr.Markdown
    sides: dict[str, SideWidgets]
    buttons: dict[str, gr.Button]
    vote_status: gr.Markdown
    next_button: gr.Button

    def scores(self) -> list[gr.Component]:
        """Both sides' ratings, then both sides' comments: what a vote sends after its token."""
        return [*(r for s in SIDES for r in self.sides[s].radios),
                *(self.sides[s].comment for s in SIDES)]

    def after_vote(self) -> list[gr.Component]:
        """What a vote updates: the headers, the vote buttons, next, the status, progress."""
        return [*(self.sides[s].header for s in SIDES), *self.buttons.values(),
                self.next_button, self.vote_status, self.progress]

    def shown(self) -> list[gr.Component]:
        """What opening a comparison updates, in `EvaluationHandlers.show_next` order."""
        return [self.token, self.compare, self.prompt,
                *(self.sides[s].header for s in SIDES),
                *(w for s in SIDES for w in self.sides[s].media), *self.scores(),
                *self.buttons.values(), self.next_button, self.vote_status, self.progress]


@dataclass
class ResultsPanel:
    show: gr.Button
    report: gr.Markdown
    win_plot: gr.BarPlot
    rank_plot: gr.BarPlot
    criteria_plot: gr.BarPlot
    numbers: gr.JSON

    def outputs(self) -> list[gr.Component]:
        return [self.report, self.win_plot, self.rank_plot, self.criteria_plot, self.numbers]


@dataclass
class ArchivePanel:
    export: gr.Button
    exported: gr.File
    upload: gr.File
    import_button: gr.Button
    status: gr.Markdown


def session_bar() -> SessionBar:
    with gr.Row():
        session = gr.Dropdown(label="Session", choices=[], allow_custom_value=True, scale=5,
                              elem_id="eval-session")
        refresh = gr.Button("Refresh list", scale=1, size="sm", elem_id="eval-refresh")
    return SessionBar(session, refresh, gr.Markdown(elem_id="eval-session-info"),
                      gr.Textbox(visible=False))


def create_panel() -> CreatePanel:
    with gr.Tab("Create", id="eval-create-tab"):
        name = gr.Textbox(label="Session name", value="", placeholder="steps 10 vs 25",
                          elem_id="eval-name")
        typed = gr.Textbox(label="Prompts, one per line", lines=4, elem_id="eval-prompts",
                           placeholder="a lighthouse on a cliff at sunset\nrain on a roof")
        uploads = gr.File(label="…or a prompt file (JSONL, CSV or TXT) with the media files "
                                "it names", file_count="multiple", elem_id="eval-uploads")
        picked = gr.CheckboxGroup([], type="index", label="…or results from the studio "
                                  "history (this browser session)", elem_id="eval-history")
        outputs = gr.CheckboxGroup(list(MODALITIES), value=["image"],
                                   label="Outputs of prompts that name none",
                                   elem_id="eval-outputs")
        systems = gr.Code(default_systems_json(), language="json", interactive=True,
                          label="Systems: a JSON list of {name, model, settings, runtime}",
                          elem_id="eval-systems")
        with gr.Row():
            seeds = gr.Textbox("0", label="Seeds (comma-separated)", elem_id="eval-seeds")
            criteria = gr.Textbox(", ".join(DEFAULT_CRITERIA), elem_id="eval-criteria",
                                  label="Rating criteria (comma-separated)")
        create = gr.Button("Create session", variant="primary", elem_id="eval-create")
        status = gr.Markdown(elem_id="eval-create-status")
    return CreatePanel(name, typed, uploads, picked, outputs, systems, seeds, criteria, create,
                       status)


def generate_panel() -> GeneratePanel:
    with gr.Tab("Generate outputs", id="eval-generate-tab"):
        with gr.Row():
            start = gr.Button("Start / resume generation", variant="primary",
                              elem_id="eval-start")
            stop = gr.Button("Stop", variant="stop", elem_id="eval-stop")
        generation = gr.Markdown(elem_id="eval-generation")
        timer = gr.Timer(POLL_SECONDS, active=False)
    return GeneratePanel(start, stop, generation, timer)


def _side_widgets(side: str) -> SideWidgets:
    key = side.lower()
    header = gr.Markdown(f"### {side}", elem_id=f"eval-side-{key}")
    media = [
        gr.Image(label=f"{side}: image", type="filepath", interactive=False, height=300,
                 elem_id=f"eval-{key}-image"),
        gr.Audio(label=f"{side}: audio", type="filepath", interactive=False, format=None,
                 elem_id=f"eval-{key}-audio"),
        gr.Video(label=f"{side}: video", interactive=False, format=None, height=300,
                 elem_id=f"eval-{key}-video"),
        gr.Textbox(label=f"{side}: text", interactive=False, lines=3,
                   elem_id=f"eval-{key}-text"),
    ]
    radios = [gr.Radio([1, 2, 3, 4, 5], label=DEFAULT_CRITERIA[i] if i < 3 else "",
                       visible=i < len(DEFAULT_CRITERIA), elem_id=f"eval-{key}-score-{i}")
              for i in range(MAX_CRITERIA)]
    comment = gr.Textbox(label=f"Comment on {side} (optional)", lines=1, max_lines=4,
                         elem_id=f"eval-{key}-comment")
    return SideWidgets(header, media, radios, comment)


def rate_panel() -> RatePanel:
    with gr.Tab("Rate", id="eval-rate-tab"):
        with gr.Row():
            rater = gr.Textbox(label="Your name or token", scale=3, elem_id="eval-rater")
            begin = gr.Button("Start / resume rating", variant="primary", scale=1,
                              elem_id="eval-begin")
        progress = gr.Markdown(elem_id="eval-progress")
        token = gr.State(None)
        with gr.Column(visible=False, elem_id="eval-rate") as compare:
            prompt = gr.Markdown(elem_id="eval-prompt")
            sides = {}
            with gr.Row(equal_height=False):
                for side in SIDES:
                    with gr.Column():
                        sides[side] = _side_widgets(side)
            with gr.Row():
                buttons = {answer: gr.Button(text, elem_id=elem_id, variant="secondary")
                           for answer, (text, elem_id) in VOTES.items()}
            vote_status = gr.Markdown(elem_id="eval-vote-status")
            next_button = gr.Button("Next comparison  [n]", variant="primary",
                                    visible=False, elem_id="eval-next")
    return RatePanel(rater, begin, progress, token, compare, prompt, sides, buttons,
                     vote_status, next_button)


def results_panel() -> ResultsPanel:
    with gr.Tab("Results", id="eval-results-tab"):
        show = gr.Button("Show results", variant="primary", elem_id="eval-show-results")
        report = gr.Markdown(elem_id="eval-results")
        with gr.Row():
            win_plot = gr.BarPlot(x="system", y="win rate", title="Win rate (ties = ½)",
                                  y_lim=[0, 1], elem_id="eval-win-plot")
            rank_plot = gr.BarPlot(x="system", y="strength",
                                   title="Bradley–Terry strength", elem_id="eval-rank-plot")
        criteria_plot = gr.BarPlot(x="criterion", y="mean", color="system", y_lim=[0, 5],
                                   title="Mean rating per criterion (1–5)",
                                   elem_id="eval-criteria-plot")
        with gr.Accordion("All statistics (JSON)", open=False):
            numbers = gr.JSON(elem_id="eval-results-json")
    return ResultsPanel(show, report, win_plot, rank_plot, criteria_plot, numbers)


def archive_panel() -> ArchivePanel:
    with gr.Tab("Export / import", id="eval-archive-tab"):
        with gr.Row():
            with gr.Column():
                export = gr.Button("Export the session as a zip", elem_id="eval-export")
                exported = gr.File(label="Zip: media, JSONL, CSV", interactive=False,
                                   elem_id="eval-exported")
            with gr.Column():
                upload = gr.File(label="A session zip to import", file_types=[".zip"],
                                 elem_id="eval-import-file")
                import_button = gr.Button("Import", elem_id="eval-import")
        status = gr.Markdown(elem_id="eval-archive-status")
    return ArchivePanel(export, exported, upload, import_button, status)
