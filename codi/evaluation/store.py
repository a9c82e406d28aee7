"""The evaluation database: sessions, their cells, votes and ratings in one SQLite file.

Every call opens its own connection (safe from any thread or process), and every write is one
`BEGIN IMMEDIATE` transaction committed before the call returns, in WAL mode with
`synchronous=FULL`: a vote that was recorded survives a browser refresh, a server restart and
`kill -9`. Votes and ratings are append-only; results read the latest row per rater and item.
Media paths are stored relative to the data folder (the database's folder).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codi.errors import CoDiUserError
from codi.evaluation.spec import SessionSpec

SCHEMA_VERSION = 1
CHOICES = ("a", "b", "tie", "both_bad")
CELL_STATUSES = ("pending", "done", "failed")
MAX_RATER = 64
MAX_COMMENT = 2000
BUSY_TIMEOUT_S = 60.0
#: A claim older than this is taken over even when its owner cannot be checked (another host).
STALE_CLAIM_S = 6 * 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    prompt_id TEXT NOT NULL,
    system TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    outputs TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (session_id, prompt_id, system, seed)
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    rater TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    seed INTEGER NOT NULL,
    system_a TEXT NOT NULL,
    system_b TEXT NOT NULL,
    choice TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS votes_by_session ON votes (session_id, rater);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    rater TEXT NOT NULL,
    criterion TEXT NOT NULL,
    score INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ratings_by_cell ON ratings (cell_id);
CREATE TABLE IF NOT EXISTS cell_claims (
    cell_id INTEGER PRIMARY KEY REFERENCES cells(id),
    owner TEXT NOT NULL,
    claimed_at TEXT NOT NULL
);
"""


def now() -> str:
    """UTC time as ISO 8601 (what every row records)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def claim_owner() -> str:
    """This process's name in `cell_claims`: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claim_is_live(owner: str, claimed_at: str) -> bool:
    """Whether a claim still holds: its process runs (same host), or it is recent (other host)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    age = datetime.now(UTC) - datetime.fromisoformat(claimed_at)
    return age.total_seconds() < STALE_CLAIM_S


def normalize_rater(rater: str) -> str:
    """The rater name as given, stripped (CoDiUserError when empty or over 64 characters)."""
    name = rater.strip() if isinstance(rater, str) else ""
    if not name or len(name) > MAX_RATER:
        raise CoDiUserError(f"Enter a rater name or token (1 to {MAX_RATER} characters).")
    return name


@dataclass
class Cell:
    """One prompt × system × seed: its status, its outputs ({modality: path relative to the data
    folder}) and the generation metadata."""

    id: int
    session_id: str
    prompt_id: str
    system: str
    seed: int
    status: str = "pending"
    outputs: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    updated_at: str = ""


def _cell(row: sqlite3.Row) -> Cell:
    return Cell(row["id"], row["session_id"], row["prompt_id"], row["system"], row["seed"],
                row["status"], json.loads(row["outputs"]), json.loads(row["metadata"]),
                row["error"], row["updated_at"])


class EvaluationStore:
    """Sessions, cells, votes and ratings in the SQLite file `path` (created when absent)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @property
    def data_dir(self) -> Path:
        """The data folder: media paths in the database are relative to it."""
        return self.path.parent

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (durably) before the block's caller goes on."""
        with self._read() as db:
            db.execute("PRAGMA synchronous = FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._read() as db:
            db.execute("PRAGMA journal_mode = WAL")
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0]
            if version is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise CoDiUserError(
                    f"{self.path} was written by a newer CoDi Studio (schema {version}, this one "
                    f"reads {SCHEMA_VERSION}); upgrade CoDi Studio or choose another data folder."
                )

    def schema_version(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, spec: SessionSpec, media_root: Path | None = None) -> str:
        """Store a validated session with all its cells pending; returns the session id.

        Input media files are copied into `sessions/<id>/inputs/` of the data folder (relative
        paths are taken from `media_root`), so a session never depends on uploads that vanish.
        """
        spec.validate()
        session_id = uuid.uuid4().hex[:12]
        stored = SessionSpec.from_dict(spec.to_dict())
        folder = Path("sessions") / session_id / "inputs"
        try:
            for prompt in stored.prompts:
                for n, item in enumerate(prompt.inputs):
                    if item.modality == "text":
                        continue
                    source = Path(item.value).expanduser()
                    if not source.is_absolute() and media_root is not None:
                        source = Path(media_root) / source
                    if not source.is_file():
                        raise CoDiUserError(
                            f"Prompt {prompt.id}: the {item.modality} file {item.value} does not "
                            "exist.")
                    target = folder / f"{prompt.id}_{n}_{item.modality}{source.suffix.lower()}"
                    (self.data_dir / target).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, self.data_dir / target)
                    item.value = target.as_posix()
            self.add_session(session_id, stored)
        except BaseException:
            shutil.rmtree(self.data_dir / "sessions" / session_id, ignore_errors=True)
            raise
        return session_id

    def add_session(self, session_id: str, spec: SessionSpec, created_at: str | None = None,
                    cells: list[Cell] | None = None, votes: list[dict[str, Any]] = (),
                    ratings: list[dict[str, Any]] = ()) -> None:
        """Insert a session whose media already sit in the data folder, in one transaction: its
        cells (default: every prompt × seed × system, pending), and imported votes and ratings
        (ratings name their cell by prompt_id, system and seed) in order with their timestamps."""
        if cells is None:
            cells = [Cell(0, session_id, p.id, s.name, seed)
                     for p in spec.prompts for seed in spec.seeds for s in spec.systems]
        stamp = now()
        with self._write() as db:
            db.execute("INSERT INTO sessions (id, name, spec, created_at) VALUES (?, ?, ?, ?)",
                       (session_id, spec.name, json.dumps(spec.to_dict()), created_at or stamp))
            db.executemany(
                "INSERT INTO cells (session_id, prompt_id, system, seed, status, outputs, "
                "metadata, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(session_id, c.prompt_id, c.system, c.seed, c.status, json.dumps(c.outputs),
                  json.dumps(c.metadata), c.error, c.updated_at or stamp) for c in cells])
            db.executemany(
                "INSERT INTO votes (session_id, rater, prompt_id, seed, system_a, system_b, "
                "choice, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(session_id, v["rater"], v["prompt_id"], v["seed"], v["system_a"],
                  v["system_b"], v["choice"], v["created_at"]) for v in votes])
            ids = {(r["prompt_id"], r["system"], r["seed"]): r["id"] for r in db.execute(
                "SELECT id, prompt_id, system, seed FROM cells WHERE session_id = ?",
                (session_id,))}
            db.executemany(
                "INSERT INTO ratings (cell_id, rater, criterion, score, comment, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(ids[(r["prompt_id"], r["system"], r["seed"])], r["rater"], r["criterion"],
                  r["score"], r.get("comment", ""), r["created_at"]) for r in ratings])

    def sessions(self) -> list[dict[str, Any]]:
        """Every session, newest first: id, name, created_at and cell counts."""
        with self._read() as db:
            rows = db.execute("SELECT id FROM sessions ORDER BY created_at DESC, id").fetchall()
        return [self.session(row["id"]) for row in rows]

    def session(self, session_id: str) -> dict[str, Any]:
        """id, name, created_at, spec (a dict), counts {pending, done, failed}, total cells."""
        with self._read() as db:
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise CoDiUserError(f"There is no evaluation session {session_id!r}.")
            counts = dict(db.execute(
                "SELECT status, count(*) FROM cells WHERE session_id = ? GROUP BY status",
                (session_id,)).fetchall())
        counts = {status: counts.get(status, 0) for status in CELL_STATUSES}
        return {"id": row["id"], "name": row["name"], "created_at": row["created_at"],
                "spec": json.loads(row["spec"]), "counts": counts, "total": sum(counts.values())}

    def spec(self, session_id: str) -> SessionSpec:
        """The session's spec (input media paths relative to the data folder)."""
        return SessionSpec.from_dict(self.session(session_id)["spec"])

    # -- cells ---------------------------------------------------------------------------------

    def cells(self, session_id: str, status: str | None = None) -> list[Cell]:
        """The session's cells in generation order (prompt, seed, system), optionally one status."""
        query, args = "SELECT * FROM cells WHERE session_id = ?", [session_id]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with self._read() as db:
            return [_cell(row) for row in db.execute(query + " ORDER BY id", args)]

    def cell(self, cell_id: int) -> Cell:
        with self._read() as db:
            row = db.execute("SELECT * FROM cells WHERE id = ?", (cell_id,)).fetchone()
        if row is None:
            raise CoDiUserError(f"There is no cell {cell_id}.")
        return _cell(row)

    def claim_cell(self, cell_id: int, owner: str) -> bool:
        """Take a cell for generation, atomically: True when `owner` may generate it now.

        False when it is done, or claimed by another writer that still runs (a studio and a
        `python -m codi batch` on one session never generate a cell twice). A claim whose
        process is gone is taken over; `mark_cell` and `release_cell` end a claim.
        """
        with self._write() as db:
            row = db.execute("SELECT status FROM cells WHERE id = ?", (cell_id,)).fetchone()
            if row is None:
                raise CoDiUserError(f"There is no cell {cell_id}.")
            if row["status"] == "done":
                return False
            claim = db.execute("SELECT owner, claimed_at FROM cell_claims WHERE cell_id = ?",
                               (cell_id,)).fetchone()
            if claim is not None and claim["owner"] != owner and _claim_is_live(
                    claim["owner"], claim["claimed_at"]):
                return False
            db.execute("INSERT OR REPLACE INTO cell_claims (cell_id, owner, claimed_at) "
                       "VALUES (?, ?, ?)", (cell_id, owner, now()))
            return True

    def release_cell(self, cell_id: int, owner: str) -> None:
        """End `owner`'s claim on a cell (it stays pending for the next run)."""
        with self._write() as db:
            db.execute("DELETE FROM cell_claims WHERE cell_id = ? AND owner = ?", (cell_id, owner))

    def mark_cell(self, cell_id: int, status: str, outputs: dict[str, str] | None = None,
                  metadata: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Record a cell's new status, outputs (relative paths) and metadata, committed."""
        if status not in CELL_STATUSES:
            raise ValueError(f"cell status {status!r} is not one of {CELL_STATUSES}")
        with self._write() as db:
            changed = db.execute(
                "UPDATE cells SET status = ?, outputs = ?, metadata = ?, error = ?, "
                "updated_at = ? WHERE id = ?",
                (status, json.dumps(outputs or {}), json.dumps(metadata or {}, default=str),
                 error, now(), cell_id)).rowcount
            db.execute("DELETE FROM cell_claims WHERE cell_id = ?", (cell_id,))
        if changed != 1:
            raise CoDiUserError(f"There is no cell {cell_id}.")

    # -- votes and ratings ---------------------------------------------------------------------

    def record_vote(self, session_id: str, rater: str, prompt_id: str, seed: int, system_a: str,
                    system_b: str, choice: str) -> int:
        """Append one A/B vote (a/b name the systems as given, not the screen sides); returns its
        id once committed. Both cells must be done."""
        rater = normalize_rater(rater)
        if choice not in CHOICES:
            raise CoDiUserError(f"A vote is one of {', '.join(CHOICES)}, not {choice!r}.")
        if system_a == system_b:
            raise CoDiUserError("A vote compares two different systems.")
        with self._write() as db:
            done = db.execute(
                "SELECT count(*) FROM cells WHERE session_id = ? AND prompt_id = ? AND seed = ? "
                "AND system IN (?, ?) AND status = 'done'",
                (session_id, prompt_id, seed, system_a, system_b)).fetchone()[0]
            if done != 2:
                raise CoDiUserError(
                    f"Cannot vote on prompt {prompt_id}, seed {seed}: {system_a} and {system_b} "
                    "are not both generated in this session.")
            return db.execute(
                "INSERT INTO votes (session_id, rater, prompt_id, seed, system_a, system_b, "
                "choice, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, rater, prompt_id, seed, system_a, system_b, choice, now())).lastrowid

    def record_rating(self, cell_id: int, rater: str, criterion: str, score: int,
                      comment: str = "") -> int:
        """Append one 1–5 rating of a generated cell on a criterion of its session; returns its
        id once committed."""
        rater = normalize_rater(rater)
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise CoDiUserError("A rating is a whole number from 1 to 5.")
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT:
            raise CoDiUserError(f"Keep the comment under {MAX_COMMENT} characters.")
        with self._write() as db:
            row = db.execute(
                "SELECT cells.status, sessions.spec FROM cells JOIN sessions "
                "ON sessions.id = cells.session_id WHERE cells.id = ?", (cell_id,)).fetchone()
            if row is None or row["status"] != "done":
                raise CoDiUserError(f"Output {cell_id} is not generated yet; it cannot be rated.")
            criteria = json.loads(row["spec"]).get("criteria", [])
            if criterion not in criteria:
                raise CoDiUserError(f"Criterion {criterion!r}: rate on {', '.join(criteria)}.")
            return db.execute(
                "INSERT INTO ratings (cell_id, rater, criterion, score, comment, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cell_id, rater, criterion, score, comment, now())).lastrowid

    def votes(self, session_id: str) -> list[dict[str, Any]]:
        """Every vote of the session, oldest first (append-only: re-votes are later rows)."""
        with self._read() as db:
            return [dict(row) for row in db.execute(
                "SELECT * FROM votes WHERE session_id = ? ORDER BY id", (session_id,))]

    def ratings(self, session_id: str) -> list[dict[str, Any]]:
        """Every rating of the session, oldest first, with its cell's prompt, system and seed."""
        with self._read() as db:
            return [dict(row) for row in db.execute(
                "SELECT ratings.*, cells.session_id, cells.prompt_id, cells.system, cells.seed "
                "FROM ratings JOIN cells ON cells.id = ratings.cell_id "
                "WHERE cells.session_id = ? ORDER BY ratings.id", (session_id,))]
