"""The Evaluate tab's event handlers and API endpoints, bound to one `Evaluator`: strings,
numbers and file paths in, Markdown, file paths and component updates out.

ui.evaluation.tab wires them to the panels of ui.evaluation.layout and wraps each in
`ui.errors.friendly`. The docstrings of the `/eval_*` endpoints are their API documentation.
"""

from __future__ import annotations

import shutil
from typing import Any

import gradio as gr

from codi.errors import CoDiUserError
from ui.evaluation.engine import SIDES, Evaluator
from ui.evaluation.forms import build_spec
from ui.evaluation.results import results_view
from ui.evaluation.view import (
    MAX_CRITERIA,
    OUTPUT_KINDS,
    VERDICTS,
    VOTES,
    comparison_payload,
    generation_markdown,
    progress_markdown,
    prompt_markdown,
    session_choices,
    session_markdown,
    side_outputs,
)
from ui.temp_files import export_dir

#: Components `show_next` leaves as they are when no pair is left: the prompt, the headers,
#: media, ratings and comments of both sides, the vote buttons, next and the vote status.
UNCHANGED_WHEN_DONE = (1 + len(SIDES) * (2 + len(OUTPUT_KINDS) + MAX_CRITERIA) + len(VOTES)
                       + 2)


def history_choices(entries: list | None) -> dict[str, Any]:
    """The studio history entries (`ui.history.HistoryEntry`) offered as prompts."""
    return gr.update(choices=[entry.caption for entry in entries or []])


def start_polling() -> gr.Timer:
    """Follow a generation that just started."""
    return gr.Timer(active=True)


class EvaluationHandlers:
    """Every handler of the Evaluate tab, over one `Evaluator`."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    # -- sessions ------------------------------------------------------------------------------

    def pick_session(self, value: str | None) -> dict[str, Any]:
        """The session picker's choices, keeping `value` selected when it still exists."""
        choices = session_choices(self.evaluator.sessions())
        ids = [session_id for _, session_id in choices]
        return gr.update(choices=choices, value=value if value in ids else (ids or [None])[0])

    def sessions(self) -> list[dict[str, Any]]:
        """Every stored session (id, name, created_at, spec, counts, total), newest first."""
        return self.evaluator.sessions()

    def select(self, session_id: str | None):
        if not session_id:
            return "No session yet: create one in *Create*.", "", gr.Timer(active=False)
        state = self.evaluator.generation(session_id)
        return (session_markdown(self.evaluator.session(session_id)),
                generation_markdown(state), gr.Timer(active=state["running"]))

    def create_session(self, name: str, typed: str, uploads: list[str] | None,
                       outputs: list[str], systems: str, seeds: str, criteria: str,
                       picked: list[int] | None, entries: list | None):
        """Create a session from prompts (typed lines, an uploaded JSONL/CSV file with its media,
        studio history), systems (JSON), seeds and criteria; returns a message and its id."""
        forms = [entries[i].form for i in picked or [] if entries and i < len(entries)]
        spec, folder = build_spec(name, typed, uploads, outputs, systems, seeds, criteria,
                                  forms)
        try:
            session_id = self.evaluator.create(spec, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        created = self.evaluator.session(session_id)
        gr.Info(f"Created {created['name']}: {created['total']} outputs to generate.")
        return f"Created {session_markdown(created)}. Next: *Generate outputs*.", session_id

    # -- generate ------------------------------------------------------------------------------

    def generate(self, session_id: str):
        """Start (or resume) generating the session's outputs in the background; returns the
        progress line. Poll /eval_progress to follow it."""
        if not self.evaluator.start(session_id):
            gr.Warning("This session is already generating.")
        return generation_markdown(self.evaluator.generation(session_id))

    def poll(self, session_id: str | None):
        if not session_id:
            return "", gr.Timer(active=False)
        state = self.evaluator.generation(session_id)
        return generation_markdown(state), gr.Timer(active=state["running"])

    def cancel(self, session_id: str) -> str:
        """Stop the session's generation after the output in progress."""
        return ("Stopping after the output in progress…" if self.evaluator.cancel(session_id)
                else "Nothing is generating.")

    def progress(self, session_id: str) -> dict[str, Any]:
        """Generation state: pending, done, failed, total, running, message, error, failures."""
        return self.evaluator.generation(session_id)

    # -- rate on the page ----------------------------------------------------------------------

    def show_next(self, session_id: str, rater_name: str) -> list[Any]:
        """The next blind pair on screen (`RatePanel.shown` order), or a thank-you."""
        key, comparison = self.evaluator.next(session_id, rater_name)
        done = self.evaluator.progress(session_id, rater_name)
        if comparison is None:
            gr.Info("Every generated pair is judged. Thank you!")
            return [None, gr.update(visible=False), *[gr.update()] * UNCHANGED_WHEN_DONE,
                    f"{progress_markdown(done)}: all done."]
        names = self.evaluator.session(session_id)["spec"]["criteria"]
        shown = {side: side_outputs(cell, self.evaluator.data_dir)
                 for side, cell in zip(SIDES, (comparison.left, comparison.right), strict=True)}
        values = [gr.update(value=shown[side][kind], visible=kind in comparison.prompt.outputs)
                  for side in SIDES for kind in OUTPUT_KINDS]
        scores = [gr.update(value=None, label=names[i] if i < len(names) else "",
                            visible=i < len(names))
                  for _ in SIDES for i in range(MAX_CRITERIA)]
        return [key, gr.update(visible=True), prompt_markdown(comparison.prompt),
                *(f"### {side}" for side in SIDES), *values, *scores, *([""] * len(SIDES)),
                *(gr.update(interactive=True) for _ in VOTES), gr.update(visible=False),
                "", progress_markdown(done)]

    def vote(self, answer: str, key: str | None, rater_name: str, *values: Any) -> list[Any]:
        """Record the on-screen ratings and comments (`RatePanel.scores`), then the vote;
        reveal the systems (`RatePanel.after_vote` order)."""
        comparison = self.evaluator.comparison(key)
        names = self.evaluator.session(comparison.session_id)["spec"]["criteria"]
        scores, notes = values[:len(SIDES) * MAX_CRITERIA], values[len(SIDES) * MAX_CRITERIA:]
        for n, side in enumerate(SIDES):
            mine = scores[n * MAX_CRITERIA:(n + 1) * MAX_CRITERIA]
            self.evaluator.rate(key, rater_name, side,
                                {c: s for c, s in zip(names, mine, strict=False)
                                 if s is not None}, notes[n])
        recorded = self.evaluator.vote(key, rater_name, answer)
        done = self.evaluator.progress(comparison.session_id, rater_name)
        return [*(f"### {side} · {recorded[side]}" for side in SIDES),
                *(gr.update(interactive=False) for _ in VOTES), gr.update(visible=True),
                f"Recorded: {VERDICTS[answer]}. A was **{recorded['A']}**, B was "
                f"**{recorded['B']}**.", progress_markdown(done)]

    # -- rate through the API ------------------------------------------------------------------

    def next_api(self, session_id: str, rater: str) -> dict[str, Any]:
        """The next blind pair for this rater: {token, prompt, A, B, criteria, progress}, or
        {token: None, progress} when every generated pair is judged. A and B hold the files
        ({image, audio, video}: paths on the server) and the text; never the system names."""
        key, comparison = self.evaluator.next(session_id, rater)
        done = self.evaluator.progress(session_id, rater)
        if comparison is None:
            return {"token": None, "progress": list(done)}
        names = self.evaluator.session(session_id)["spec"]["criteria"]
        return comparison_payload(key, comparison, self.evaluator.data_dir, done, names)

    def vote_api(self, token: str, rater: str, choice: str) -> dict[str, Any]:
        """Vote on a pair from /eval_next: choice A, B, tie or both_bad. Returns {vote_id,
        A, B (the systems behind the sides), choice (as stored: a, b, tie, both_bad),
        progress}."""
        recorded = self.evaluator.vote(token, rater, choice)
        session_id = self.evaluator.comparison(token).session_id
        return {**recorded, "progress": list(self.evaluator.progress(session_id, rater))}

    def rate_api(self, token: str, rater: str, side: str, scores: dict[str, int],
                 comment: str = "") -> dict[str, Any]:
        """Rate side A or B of a pair from /eval_next: scores {criterion: 1..5}, an optional
        comment. Returns {ratings: the ids recorded}."""
        return {"ratings": self.evaluator.rate(token, rater, side, scores, comment)}

    # -- results and archives ------------------------------------------------------------------

    def results(self, session_id: str):
        """Win rates with 95% CIs, Bradley–Terry / Elo ranking, criterion means, agreement: a
        Markdown report, three plots and every number as JSON."""
        summary = self.evaluator.results(session_id)
        report, wins, ranking, means = results_view(summary)
        return report, wins, ranking, means, summary

    def export_zip(self, session_id: str) -> str:
        """The session as a zip: manifest, spec, cells, votes and ratings (JSONL and CSV) and
        every media file. The zip's folder goes a few minutes later (`ui.temp_files`)."""
        return str(self.evaluator.export(session_id, export_dir()))

    def import_zip(self, zip_file: str | None):
        """Import an exported session zip as a new session; returns a message and its id."""
        if not zip_file:
            raise CoDiUserError("Choose a session zip to import first.")
        session_id = self.evaluator.import_zip(zip_file)
        imported = self.evaluator.session(session_id)
        return f"Imported {session_markdown(imported)}.", session_id
