"""The Evaluate tab's engine: the session store, background generation and blind comparisons.

It knows nothing of Gradio: the tab (ui.evaluation.tab) and the API endpoints call these
methods and turn `CoDiUserError` into messages. Comparisons handed to a rater are kept under a
random token, so the page never holds the system names before the vote.
"""

from __future__ import annotations

import random
import secrets
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codi.errors import CoDiUserError
from codi.evaluation import data_dir as default_data_dir
from codi.evaluation import database_path
from codi.evaluation.pairing import Comparison, next_comparison, progress
from codi.evaluation.spec import SessionSpec
from codi.evaluation.store import Cell, EvaluationStore

#: Open comparisons kept per server (the oldest are forgotten first).
MAX_OPEN = 10_000
SIDES = ("A", "B")
ANSWERS = {"A": "left", "B": "right", "tie": "tie", "both_bad": "both_bad"}


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """The data folder (`--data-dir`, else $CODI_DATA_DIR, else ./codi-data), absolute."""
    return default_data_dir(explicit).resolve()


@dataclass
class GenerationJob:
    """One session's background generation: its thread, cancel switch and outcome."""

    thread: threading.Thread
    cancel: threading.Event = field(default_factory=threading.Event)
    message: str = "Starting…"
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


class Evaluator:
    """Sessions in one data folder; safe to call from many request threads at once."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self._store: EvaluationStore | None = None
        self._lock = threading.Lock()
        self._jobs: dict[str, GenerationJob] = {}
        self._open: OrderedDict[str, Comparison] = OrderedDict()
        self._rng = random.Random(secrets.randbits(64))

    @property
    def store(self) -> EvaluationStore:
        """The database, opened (and created) on first use."""
        with self._lock:
            if self._store is None:
                self._store = EvaluationStore(database_path(self.data_dir))
            return self._store

    # -- sessions ------------------------------------------------------------------------------

    def sessions(self) -> list[dict[str, Any]]:
        """Every stored session, newest first (none, without creating the database, when the
        data folder has none yet)."""
        if self._store is None and not database_path(self.data_dir).is_file():
            return []
        return self.store.sessions()

    def session(self, session_id: str) -> dict[str, Any]:
        return self.store.session(_session_id(session_id))

    def create(self, spec: SessionSpec, media_root: Path | None = None) -> str:
        """Store a new session (cells pending); returns its id."""
        return self.store.create_session(spec, media_root)

    # -- generation ----------------------------------------------------------------------------

    def start(self, session_id: str) -> bool:
        """Generate the session's pending cells in a background thread (False: already
        running). Done cells are skipped, so starting again resumes."""
        session_id = self.session(session_id)["id"]
        with self._lock:
            job = self._jobs.get(session_id)
            if job is not None and job.running:
                return False
            thread = threading.Thread(target=self._generate, args=(session_id,), daemon=True,
                                      name=f"codi-eval-{session_id}")
            self._jobs[session_id] = GenerationJob(thread)
        thread.start()
        return True

    def cancel(self, session_id: str) -> bool:
        """Stop the session's generation after its current cell (False: none running)."""
        with self._lock:
            job = self._jobs.get(_session_id(session_id))
        if job is None or not job.running:
            return False
        job.cancel.set()
        job.message = "Cancelling after the current output…"
        return True

    def _generate(self, session_id: str) -> None:
        from codi.evaluation.grid import generate_session

        job = self._jobs[session_id]

        def on_progress(finished: int, total: int, cell: Cell) -> None:
            job.message = (f"{finished} / {total} outputs (last: prompt {cell.prompt_id}, "
                           f"{cell.system}, seed {cell.seed})")

        try:
            generate_session(self.store, session_id, self.data_dir, on_progress=on_progress,
                             cancel=job.cancel)
            job.message = "Cancelled." if job.cancel.is_set() else "Finished."
        except CoDiUserError as error:
            job.error, job.message = str(error), "Stopped."
        except Exception as error:  # a bug: report it on the page, keep serving
            traceback.print_exc()
            job.error = f"internal error ({type(error).__name__}); see the server log"
            job.message = "Stopped."

    def generation(self, session_id: str) -> dict[str, Any]:
        """Counts of pending / done / failed cells, whether a generation runs, its message."""
        session = self.session(session_id)
        with self._lock:
            job = self._jobs.get(session["id"])
        failed = [{"prompt_id": c.prompt_id, "system": c.system, "seed": c.seed,
                   "error": c.error} for c in self.store.cells(session["id"], "failed")]
        return {"session_id": session["id"], "name": session["name"], **session["counts"],
                "total": session["total"], "running": bool(job and job.running),
                "message": job.message if job else "", "error": job.error if job else None,
                "failures": failed}

    # -- rating --------------------------------------------------------------------------------

    def next(self, session_id: str, rater: str) -> tuple[str | None, Comparison | None]:
        """(token, comparison) of a blind pair this rater has not judged; (None, None) when
        every generated pair is judged."""
        session_id = self.session(session_id)["id"]
        with self._lock:
            rng = random.Random(self._rng.getrandbits(64))
        comparison = next_comparison(self.store, session_id, rater, rng)
        if comparison is None:
            return None, None
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._open[token] = comparison
            while len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
        return token, comparison

    def comparison(self, token: str) -> Comparison:
        with self._lock:
            comparison = self._open.get((token or "").strip())
        if comparison is None:
            raise CoDiUserError("This comparison is no longer open (the server may have "
                                "restarted): load the next one.")
        return comparison

    def progress(self, session_id: str, rater: str) -> tuple[int, int]:
        """(pairs this rater has voted on, pairs generated so far)."""
        return progress(self.store, self.session(session_id)["id"], rater)

    def vote(self, token: str, rater: str, answer: str) -> dict[str, Any]:
        """Record a vote given on screen sides: A (left), B (right), tie or both_bad.

        Returns the vote id and the systems behind A and B (revealed after the vote)."""
        if answer not in ANSWERS:
            raise CoDiUserError(f"Vote A, B, tie or both_bad, not {answer!r}.")
        c = self.comparison(token)
        vote_id = self.store.record_vote(c.session_id, rater, c.prompt_id, c.seed, c.system_a,
                                         c.system_b, c.choice_for(ANSWERS[answer]))
        return {"vote_id": vote_id, "A": c.left.system, "B": c.right.system,
                "choice": c.choice_for(ANSWERS[answer])}

    def rate(self, token: str, rater: str, side: str, scores: dict[str, int],
             comment: str = "") -> list[int]:
        """Record 1–5 scores on named criteria for the output on side A or B; returns the rating
        ids. A comment needs at least one score."""
        if side not in SIDES:
            raise CoDiUserError(f"Rate side A or B, not {side!r}.")
        comparison = self.comparison(token)
        cell = comparison.left if side == "A" else comparison.right
        scores = {k: v for k, v in (scores or {}).items() if v not in (None, "")}
        if not scores:
            if (comment or "").strip():
                raise CoDiUserError(f"Give output {side} at least one score to keep the comment.")
            return []
        try:
            values = {criterion: int(score) for criterion, score in scores.items()}
        except (TypeError, ValueError):
            raise CoDiUserError("Scores are whole numbers from 1 to 5.") from None
        return [self.store.record_rating(cell.id, rater, criterion, score, comment)
                for criterion, score in values.items()]

    # -- results and archives ------------------------------------------------------------------

    def results(self, session_id: str) -> dict[str, Any]:
        from codi.evaluation.stats import summary

        return summary(self.store, self.session(session_id)["id"])

    def export(self, session_id: str, folder: Path) -> Path:
        """The session as a zip (media, JSONL, CSV) written into `folder`."""
        from codi.evaluation.archive import export_session

        session = self.session(session_id)
        folder.mkdir(parents=True, exist_ok=True)
        return export_session(self.store, session["id"], self.data_dir,
                              folder / f"codi-eval-{session['id']}.zip")

    def import_zip(self, zip_path: str | Path) -> str:
        """Import an exported session as a new one; returns its id."""
        from codi.evaluation.archive import import_session

        return import_session(self.store, Path(zip_path), self.data_dir)


def _session_id(session_id: str | None) -> str:
    if not session_id or not str(session_id).strip():
        raise CoDiUserError("Choose a session first (or create one).")
    return str(session_id).strip()
