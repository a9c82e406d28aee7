"""The Evaluate tab: create a session, generate its grid in the background, rate blind pairs,
see the results, export and import. Lays out the panels (ui.evaluation.layout) and wires them
to the handlers (ui.evaluation.handlers); the state is in ui.evaluation.engine and the storage,
statistics and archives in codi.evaluation.

API endpoints (gradio_client): /eval_create, /eval_generate, /eval_progress, /eval_cancel,
/eval_sessions, /eval_next, /eval_vote, /eval_rate, /eval_results, /eval_export, /eval_import
(see docs/evaluation.md).
"""

from __future__ import annotations

import functools

import gradio as gr

from ui.errors import friendly
from ui.evaluation.engine import Evaluator
from ui.evaluation.handlers import EvaluationHandlers, history_choices, start_polling
from ui.evaluation.keys import KEYS_JS
from ui.evaluation.layout import (
    ArchivePanel,
    CreatePanel,
    GeneratePanel,
    RatePanel,
    ResultsPanel,
    SessionBar,
    archive_panel,
    create_panel,
    generate_panel,
    rate_panel,
    results_panel,
    session_bar,
)

PRIVATE = {"api_visibility": "private", "queue": False}
#: Named endpoints run outside the queue's concurrency limit (they only touch the store).
OPEN = {"concurrency_limit": None}
#: The browser remembers the chosen session and the rater name across refreshes.
REMEMBERED_SESSION = "() => localStorage.getItem('codi-eval-session') || ''"
REMEMBERED_RATER = "() => localStorage.getItem('codi-eval-rater') || ''"
REMEMBER_SESSION = "(value) => { localStorage.setItem('codi-eval-session', value || ''); }"
REMEMBER_RATER = "(value) => { localStorage.setItem('codi-eval-rater', value || ''); }"


def _wire_sessions(app: gr.Blocks, bar: SessionBar, generation: GeneratePanel,
                   rater: gr.Textbox, handlers: EvaluationHandlers) -> None:
    """The picker (remembered by the browser), its refresh, /eval_sessions and the keys."""
    app.load(friendly(handlers.pick_session), bar.session, bar.session, js=REMEMBERED_SESSION,
             **PRIVATE)
    app.load(None, None, rater, js=REMEMBERED_RATER)
    app.load(None, js=KEYS_JS)
    bar.refresh.click(friendly(handlers.pick_session), bar.session, bar.session, **PRIVATE)
    gr.api(friendly(handlers.sessions), api_name="eval_sessions", **OPEN)
    bar.session.change(friendly(handlers.select), bar.session,
                       [bar.info, generation.generation, generation.timer], **PRIVATE)
    bar.session.change(None, bar.session, None, js=REMEMBER_SESSION)
    rater.change(None, rater, None, js=REMEMBER_RATER)


def _wire_create(bar: SessionBar, panel: CreatePanel, history: gr.State | None,
                 handlers: EvaluationHandlers) -> None:
    """/eval_create, then select the new session; offer the studio history as prompts."""
    entries = history if history is not None else gr.State([])
    panel.create.click(friendly(handlers.create_session), [*panel.fields(), entries],
                       [panel.status, bar.made], api_name="eval_create", **OPEN).success(
        friendly(handlers.pick_session), bar.made, bar.session, **PRIVATE)
    if history is not None:
        history.change(history_choices, history, panel.picked, **PRIVATE)


def _wire_generate(bar: SessionBar, panel: GeneratePanel, handlers: EvaluationHandlers) -> None:
    """/eval_generate (then poll while it runs), /eval_cancel and /eval_progress."""
    panel.start.click(friendly(handlers.generate), bar.session, panel.generation,
                      api_name="eval_generate", **OPEN).success(
        start_polling, None, panel.timer, **PRIVATE)
    panel.timer.tick(friendly(handlers.poll), bar.session, [panel.generation, panel.timer],
                     **PRIVATE)
    panel.stop.click(friendly(handlers.cancel), bar.session, panel.generation,
                     api_name="eval_cancel", **OPEN)
    gr.api(friendly(handlers.progress), api_name="eval_progress", **OPEN)


def _wire_rate(bar: SessionBar, panel: RatePanel, handlers: EvaluationHandlers) -> None:
    """Open the next pair, vote with the buttons; /eval_next, /eval_vote and /eval_rate."""
    for trigger in (panel.begin.click, panel.rater.submit, panel.next_button.click):
        trigger(friendly(handlers.show_next), [bar.session, panel.rater], panel.shown(),
                **PRIVATE)
    for answer, button in panel.buttons.items():
        button.click(friendly(functools.partial(handlers.vote, answer)),
                     [panel.token, panel.rater, *panel.scores()], panel.after_vote(),
                     api_visibility="private", **OPEN)
    gr.api(friendly(handlers.next_api), api_name="eval_next", **OPEN)
    gr.api(friendly(handlers.vote_api), api_name="eval_vote", **OPEN)
    gr.api(friendly(handlers.rate_api), api_name="eval_rate", **OPEN)


def _wire_archive(bar: SessionBar, results: ResultsPanel, archive: ArchivePanel,
                  handlers: EvaluationHandlers) -> None:
    """/eval_results, /eval_export and /eval_import (then select the imported session)."""
    results.show.click(friendly(handlers.results), bar.session, results.outputs(),
                       api_name="eval_results", **OPEN)
    archive.export.click(friendly(handlers.export_zip), bar.session, archive.exported,
                         api_name="eval_export", **OPEN)
    archive.import_button.click(friendly(handlers.import_zip), archive.upload,
                                [archive.status, bar.made], api_name="eval_import",
                                **OPEN).success(
        friendly(handlers.pick_session), bar.made, bar.session, **PRIVATE)


def build_evaluation_tab(app: gr.Blocks, evaluator: Evaluator,
                         history: gr.State | None = None) -> None:
    """Lay out the Evaluate tab's content in the current context and wire its events; `history`
    is the studio's history (a list of `ui.history.HistoryEntry`) to build prompts from."""
    gr.Markdown("Judge generations side by side: **create** a session (prompts × systems × "
                "seeds), **generate** its outputs in the background, **rate** blind pairs "
                "(keys 1/a, 2/b, 3/t, 4/x; n for the next), then read the **results** and "
                f"**export** them. Sessions are stored in `{evaluator.data_dir}`.",
                elem_classes="hint")
    bar = session_bar()
    with gr.Tabs():
        create = create_panel()
        generation = generate_panel()
        rate = rate_panel()
        results = results_panel()
        archive = archive_panel()
    handlers = EvaluationHandlers(evaluator)
    _wire_sessions(app, bar, generation, rate.rater, handlers)
    _wire_create(bar, create, history, handlers)
    _wire_generate(bar, generation, handlers)
    _wire_rate(bar, rate, handlers)
    _wire_archive(bar, results, archive, handlers)
