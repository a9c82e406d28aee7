"""The Evaluate tab: create a session, generate its grid in the background, rate blind pairs,
see the results, export and import. Layout and event wiring only; the work is in
ui.evaluation.engine (state) and codi.evaluation (storage, statistics, archives).

API endpoints (gradio_client): /eval_create, /eval_generate, /eval_progress, /eval_cancel,
/eval_sessions, /eval_next, /eval_vote, /eval_rate, /eval_results, /eval_export, /eval_import
(see docs/evaluation.md).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from codi.errors import CoDiUserError
from codi.evaluation.spec import DEFAULT_CRITERIA
from codi.pipeline.request import MODALITIES
from ui.evaluation.engine import SIDES, Evaluator
from ui.evaluation.forms import build_spec, default_systems_json
from ui.evaluation.keys import KEYS_JS
from ui.evaluation.results import results_view
from ui.evaluation.view import (
    OUTPUT_KINDS,
    comparison_payload,
    generation_markdown,
    progress_markdown,
    prompt_markdown,
    session_choices,
    session_markdown,
    side_outputs,
)

log = logging.getLogger("codi.evaluation.ui")
#: Rating criteria shown per output (a session with more shows its first ones).
MAX_CRITERIA = 6
#: Answer → (button text, elem_id): the keyboard shortcuts (ui.evaluation.keys) click these.
VOTES = {"A": ("A is better  [1]", "eval-vote-a"), "B": ("B is better  [2]", "eval-vote-b"),
         "tie": ("Tie  [3]", "eval-vote-tie"), "both_bad": ("Both bad  [4]", "eval-vote-both-bad")}
PRIVATE = {"api_visibility": "private", "queue": False}
POLL_SECONDS = 1.0
#: The browser remembers the chosen session and the rater name across refreshes.
REMEMBERED_SESSION = "() => localStorage.getItem('codi-eval-session') || ''"
REMEMBERED_RATER = "() => localStorage.getItem('codi-eval-rater') || ''"
REMEMBER_SESSION = "(value) => { localStorage.setItem('codi-eval-session', value || ''); }"
REMEMBER_RATER = "(value) => { localStorage.setItem('codi-eval-rater', value || ''); }"


def friendly(fn: Callable) -> Callable:
    """Show user mistakes as a message and bugs as a short notice, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CoDiUserError as error:
            raise gr.Error(str(error), title="Please check") from None
        except gr.Error:
            raise
        except Exception as error:  # a bug: say so, keep serving
            log.exception("evaluation request failed")
            raise gr.Error(f"CoDi Studio hit an internal error ({type(error).__name__}); the "
                           "server log has the details.", title="Internal error") from None

    return wrapper


def _session_picker(evaluator: Evaluator, value: str | None) -> dict[str, Any]:
    choices = session_choices(evaluator.sessions())
    ids = [session_id for _, session_id in choices]
    return gr.update(choices=choices, value=value if value in ids else (ids or [None])[0])


def _side_widgets(side: str) -> tuple[gr.Markdown, list[gr.Component], list[gr.Radio],
                                     gr.Textbox]:
    """One output of the pair: its header (the system name appears after the vote), its media,
    its 1–5 ratings and its comment."""
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
    return header, media, radios, comment


def build_evaluation_tab(app: gr.Blocks, evaluator: Evaluator,
                         history: gr.State | None = None) -> None:
    """Lay out the Evaluate tab's content in the current context and wire its events; `history`
    is the studio's history (a list of `ui.history.HistoryEntry`) to build prompts from."""
    gr.Markdown("Judge generations side by side: **create** a session (prompts × systems × "
                "seeds), **generate** its outputs in the background, **rate** blind pairs "
                "(keys 1/a, 2/b, 3/t, 4/x; n for the next), then read the **results** and "
                f"**export** them. Sessions are stored in `{evaluator.data_dir}`.",
                elem_classes="hint")
    with gr.Row():
        session = gr.Dropdown(label="Session", choices=[], allow_custom_value=True, scale=5,
                              elem_id="eval-session")
        refresh = gr.Button("Refresh list", scale=1, size="sm", elem_id="eval-refresh")
    session_info = gr.Markdown(elem_id="eval-session-info")
    #: The id a create or import returned (what their API callers get); it then selects it.
    made = gr.Textbox(visible=False)

    with gr.Tabs():
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
            create_status = gr.Markdown(elem_id="eval-create-status")
        with gr.Tab("Generate outputs", id="eval-generate-tab"):
            with gr.Row():
                start = gr.Button("Start / resume generation", variant="primary",
                                  elem_id="eval-start")
                stop = gr.Button("Stop", variant="stop", elem_id="eval-stop")
            generation = gr.Markdown(elem_id="eval-generation")
            timer = gr.Timer(POLL_SECONDS, active=False)
        with gr.Tab("Rate", id="eval-rate-tab"):
            with gr.Row():
                rater = gr.Textbox(label="Your name or token", scale=3, elem_id="eval-rater")
                begin = gr.Button("Start / resume rating", variant="primary", scale=1,
                                  elem_id="eval-begin")
            rate_progress = gr.Markdown(elem_id="eval-progress")
            token = gr.State(None)
            with gr.Column(visible=False, elem_id="eval-rate") as compare:
                prompt_md = gr.Markdown(elem_id="eval-prompt")
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
        with gr.Tab("Results", id="eval-results-tab"):
            show = gr.Button("Show results", variant="primary", elem_id="eval-show-results")
            results_md = gr.Markdown(elem_id="eval-results")
            with gr.Row():
                win_plot = gr.BarPlot(x="system", y="win rate", title="Win rate (ties = ½)",
                                      y_lim=[0, 1], elem_id="eval-win-plot")
                rank_plot = gr.BarPlot(x="system", y="strength",
                                       title="Bradley–Terry strength", elem_id="eval-rank-plot")
            criteria_plot = gr.BarPlot(x="criterion", y="mean", color="system", y_lim=[0, 5],
                                       title="Mean rating per criterion (1–5)",
                                       elem_id="eval-criteria-plot")
            with gr.Accordion("All statistics (JSON)", open=False):
                results_json = gr.JSON(elem_id="eval-results-json")
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
            archive_status = gr.Markdown(elem_id="eval-archive-status")

    headers = [sides[s][0] for s in SIDES]
    media = [w for s in SIDES for w in sides[s][1]]
    radios = [w for s in SIDES for w in sides[s][2]]
    comments = [sides[s][3] for s in SIDES]

    # -- sessions ------------------------------------------------------------------------------

    app.load(friendly(lambda saved: _session_picker(evaluator, saved)), session, session,
             js=REMEMBERED_SESSION, **PRIVATE)
    app.load(None, None, rater, js=REMEMBERED_RATER)
    app.load(None, js=KEYS_JS)
    refresh.click(friendly(lambda current: _session_picker(evaluator, current)), session,
                  session, **PRIVATE)

    def sessions() -> list[dict[str, Any]]:
        """Every stored session (id, name, created_at, spec, counts, total), newest first."""
        return evaluator.sessions()

    gr.api(friendly(sessions), api_name="eval_sessions", concurrency_limit=None)

    def select(session_id: str | None):
        if not session_id:
            return "No session yet: create one in *Create*.", "", gr.Timer(active=False)
        state = evaluator.generation(session_id)
        return (session_markdown(evaluator.session(session_id)), generation_markdown(state),
                gr.Timer(active=state["running"]))

    session.change(friendly(select), session, [session_info, generation, timer], **PRIVATE)
    session.change(None, session, None, js=REMEMBER_SESSION)
    rater.change(None, rater, None, js=REMEMBER_RATER)

    # -- create --------------------------------------------------------------------------------

    def create_session(name: str, typed: str, uploads: list[str] | None, outputs: list[str],
                       systems: str, seeds: str, criteria: str, picked: list[int] | None,
                       entries: list | None):
        """Create a session from prompts (typed lines, an uploaded JSONL/CSV file with its media,
        studio history), systems (JSON), seeds and criteria; returns a message and its id."""
        forms = [entries[i].form for i in picked or [] if entries and i < len(entries)]
        spec, folder = build_spec(name, typed, uploads, outputs, systems, seeds, criteria,
                                  forms)
        try:
            session_id = evaluator.create(spec, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        created = evaluator.session(session_id)
        gr.Info(f"Created {created['name']}: {created['total']} outputs to generate.")
        return f"Created {session_markdown(created)}. Next: *Generate outputs*.", session_id

    history_input = history if history is not None else gr.State([])
    create.click(friendly(create_session),
                 [name, typed, uploads, outputs, systems, seeds, criteria, picked,
                  history_input], [create_status, made], api_name="eval_create",
                 concurrency_limit=None).success(
        friendly(lambda made_id: _session_picker(evaluator, made_id)), made, session, **PRIVATE)
    if history is not None:
        history.change(lambda entries: gr.update(choices=[e.caption for e in entries or []]),
                       history, picked, **PRIVATE)

    # -- generate ------------------------------------------------------------------------------

    def generate(session_id: str):
        """Start (or resume) generating the session's outputs in the background; returns the
        progress line. Poll /eval_progress to follow it."""
        if not evaluator.start(session_id):
            gr.Warning("This session is already generating.")
        return generation_markdown(evaluator.generation(session_id))

    def poll(session_id: str | None):
        if not session_id:
            return "", gr.Timer(active=False)
        state = evaluator.generation(session_id)
        return generation_markdown(state), gr.Timer(active=state["running"])

    start.click(friendly(generate), session, generation, api_name="eval_generate",
                concurrency_limit=None).success(lambda: gr.Timer(active=True), None, timer,
                                                **PRIVATE)
    timer.tick(friendly(poll), session, [generation, timer], **PRIVATE)

    def cancel(session_id: str) -> str:
        """Stop the session's generation after the output in progress."""
        return ("Stopping after the output in progress…" if evaluator.cancel(session_id)
                else "Nothing is generating.")

    stop.click(friendly(cancel), session, generation, api_name="eval_cancel",
               concurrency_limit=None)

    def progress_api(session_id: str) -> dict[str, Any]:
        """Generation state: pending, done, failed, total, running, message, error, failures."""
        return evaluator.generation(session_id)

    gr.api(friendly(progress_api), api_name="eval_progress", concurrency_limit=None)

    # -- rate ----------------------------------------------------------------------------------

    def show_next(session_id: str, rater_name: str):
        key, comparison = evaluator.next(session_id, rater_name)
        done = evaluator.progress(session_id, rater_name)
        if comparison is None:
            gr.Info("Every generated pair is judged. Thank you!")
            unchanged = [gr.update()] * (len(shown_outputs) - 3)
            return [None, gr.update(visible=False), *unchanged,
                    f"{progress_markdown(done)}: all done."]
        criteria_names = evaluator.session(session_id)["spec"]["criteria"]
        shown = {side: side_outputs(cell, evaluator.data_dir)
                 for side, cell in zip(SIDES, (comparison.left, comparison.right), strict=True)}
        values = [gr.update(value=shown[side][kind],
                            visible=kind in comparison.prompt.outputs)
                  for side in SIDES for kind in OUTPUT_KINDS]
        scores = [gr.update(value=None, label=criteria_names[i] if i < len(criteria_names)
                            else "", visible=i < len(criteria_names))
                  for _ in SIDES for i in range(MAX_CRITERIA)]
        return [key, gr.update(visible=True), prompt_markdown(comparison.prompt),
                *(f"### {side}" for side in SIDES), *values, *scores, *([""] * len(comments)),
                *(gr.update(interactive=True) for _ in buttons), gr.update(visible=False),
                "", progress_markdown(done)]

    shown_outputs = [token, compare, prompt_md, *headers, *media, *radios, *comments,
                     *buttons.values(), next_button, vote_status, rate_progress]
    for trigger in (begin.click, rater.submit, next_button.click):
        trigger(friendly(show_next), [session, rater], shown_outputs, **PRIVATE)

    def vote_with(answer: str) -> Callable:
        def vote(key: str | None, rater_name: str, *values: Any):
            comparison = evaluator.comparison(key)
            names = evaluator.session(comparison.session_id)["spec"]["criteria"]
            scores, notes = values[:len(radios)], values[len(radios):]
            for n, side in enumerate(SIDES):
                mine = scores[n * MAX_CRITERIA:(n + 1) * MAX_CRITERIA]
                evaluator.rate(key, rater_name, side,
                               {c: s for c, s in zip(names, mine, strict=False)
                                if s is not None}, notes[n])
            recorded = evaluator.vote(key, rater_name, answer)
            done = evaluator.progress(comparison.session_id, rater_name)
            said = {"A": "A is better", "B": "B is better", "tie": "a tie",
                    "both_bad": "both bad"}[answer]
            return [*(f"### {side} · {recorded[side]}" for side in SIDES),
                    *(gr.update(interactive=False) for _ in buttons), gr.update(visible=True),
                    f"Recorded: {said}. A was **{recorded['A']}**, B was **{recorded['B']}**.",
                    progress_markdown(done)]

        return vote

    for answer, button in buttons.items():
        button.click(friendly(vote_with(answer)), [token, rater, *radios, *comments],
                     [*headers, *buttons.values(), next_button, vote_status, rate_progress],
                     api_visibility="private", concurrency_limit=None)

    def next_api(session_id: str, rater: str) -> dict[str, Any]:
        """The next blind pair for this rater: {token, prompt, A, B, criteria, progress}, or
        {token: None, progress} when every generated pair is judged. A and B hold the files
        ({image, audio, video}: paths on the server) and the text; never the system names."""
        key, comparison = evaluator.next(session_id, rater)
        done = evaluator.progress(session_id, rater)
        if comparison is None:
            return {"token": None, "progress": list(done)}
        names = evaluator.session(session_id)["spec"]["criteria"]
        return comparison_payload(key, comparison, evaluator.data_dir, done, names)

    def vote_api(token: str, rater: str, choice: str) -> dict[str, Any]:
        """Vote on a pair from /eval_next: choice A, B, tie or both_bad. Returns {vote_id,
        A, B (the systems behind the sides), choice (as stored: a, b, tie, both_bad),
        progress}."""
        recorded = evaluator.vote(token, rater, choice)
        session_id = evaluator.comparison(token).session_id
        return {**recorded, "progress": list(evaluator.progress(session_id, rater))}

    def rate_api(token: str, rater: str, side: str, scores: dict[str, int],
                 comment: str = "") -> dict[str, Any]:
        """Rate side A or B of a pair from /eval_next: scores {criterion: 1..5}, an optional
        comment. Returns {ratings: the ids recorded}."""
        return {"ratings": evaluator.rate(token, rater, side, scores, comment)}

    gr.api(friendly(next_api), api_name="eval_next", concurrency_limit=None)
    gr.api(friendly(vote_api), api_name="eval_vote", concurrency_limit=None)
    gr.api(friendly(rate_api), api_name="eval_rate", concurrency_limit=None)

    # -- results and archives ------------------------------------------------------------------

    def results(session_id: str):
        """Win rates with 95% CIs, Bradley–Terry / Elo ranking, criterion means, agreement: a
        Markdown report, three plots and every number as JSON."""
        summary = evaluator.results(session_id)
        report, wins, ranking, means = results_view(summary)
        return report, wins, ranking, means, summary

    show.click(friendly(results), session,
               [results_md, win_plot, rank_plot, criteria_plot, results_json],
               api_name="eval_results", concurrency_limit=None)

    def export_zip(session_id: str) -> str:
        """The session as a zip: manifest, spec, cells, votes and ratings (JSONL and CSV) and
        every media file."""
        return str(evaluator.export(session_id, Path(tempfile.mkdtemp(prefix="codi-export-"))))

    export.click(friendly(export_zip), session, exported, api_name="eval_export",
                 concurrency_limit=None)

    def import_zip(zip_file: str | None):
        """Import an exported session zip as a new session; returns a message and its id."""
        if not zip_file:
            raise CoDiUserError("Choose a session zip to import first.")
        session_id = evaluator.import_zip(zip_file)
        imported = evaluator.session(session_id)
        return f"Imported {session_markdown(imported)}.", session_id

    import_button.click(friendly(import_zip), upload, [archive_status, made],
                        api_name="eval_import", concurrency_limit=None).success(
        friendly(lambda made_id: _session_picker(evaluator, made_id)), made, session, **PRIVATE)
