"""Evaluation sessions: spec, prompt files, the SQLite store (kill -9, concurrency), pairing."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from codi.errors import CoDiUserError
from codi.evaluation import data_dir, database_path, open_store
from codi.evaluation.pairing import next_comparison, progress
from codi.evaluation.spec import (
    InputSpec,
    PromptItem,
    SessionSpec,
    SystemSpec,
    parse_prompts,
)
from codi.evaluation.store import SCHEMA_VERSION, EvaluationStore

REPO = Path(__file__).resolve().parents[1]


def make_spec(prompts: int = 2, systems: int = 2, seeds: tuple[int, ...] = (1, 2)) -> SessionSpec:
    return SessionSpec(
        name="test",
        prompts=[PromptItem(f"p{i}", [InputSpec("text", f"prompt {i}")], ["image"])
                 for i in range(prompts)],
        systems=[SystemSpec(f"sys{i}", "tiny", {"steps": 2 + i}) for i in range(systems)],
        seeds=list(seeds),
    )


def done_session(store: EvaluationStore, **kwargs) -> str:
    """A session whose cells are all marked done (no generation)."""
    session_id = store.create_session(make_spec(**kwargs))
    for cell in store.cells(session_id):
        store.mark_cell(cell.id, "done", {"image": f"fake/{cell.id}.png"}, {})
    return session_id


@pytest.fixture
def store(tmp_path) -> EvaluationStore:
    return open_store(tmp_path)


# -- spec ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda s: s.systems.pop(), "at least two systems"),
    (lambda s: setattr(s.systems[1], "name", "sys0"), "unique"),
    (lambda s: s.prompts.clear(), "at least one prompt"),
    (lambda s: s.seeds.clear(), "at least one seed"),
    (lambda s: setattr(s.prompts[0].inputs[0], "modality", "smell"), "unknown input type"),
    (lambda s: setattr(s.prompts[0], "outputs", ["hologram"]), "unknown output"),
    (lambda s: setattr(s.prompts[0], "id", "../x"), "Prompt id"),
    (lambda s: s.systems[0].settings.update(steps=0), "Steps"),
    (lambda s: s.systems[0].settings.update(seed=3), "unknown setting"),
    (lambda s: s.systems[0].runtime.update(quantize="int3"), "quantize"),
])
def test_spec_validation_names_the_problem(change, message):
    spec = make_spec()
    spec.validate()
    change(spec)
    with pytest.raises(CoDiUserError, match=message):
        spec.validate()


def test_spec_round_trips_and_builds_settings():
    spec = make_spec()
    again = SessionSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    settings = spec.systems[1].generation_settings(seed=7)
    assert (settings.steps, settings.seed, settings.num_samples) == (3, 7, 1)


def test_parse_prompts_jsonl_csv_lines(tmp_path):
    (tmp_path / "cat.png").write_bytes(b"png")
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text(
        '{"id": "a", "text": "a cat", "image": "cat.png", "weights": {"image": 0.5}, '
        '"outputs": ["image", "audio"]}\n\n{"text": "rain", "outputs": "audio"}\n')
    first, second = parse_prompts(jsonl, "jsonl")
    assert first.id == "a" and first.outputs == ["image", "audio"]
    assert first.inputs[1] == InputSpec("image", str(tmp_path / "cat.png"), 0.5)
    assert second.id == "p002" and second.outputs == ["audio"]
    rows = parse_prompts('id,text,outputs,weights\nx,"a dog, running","image,text",text=0.7\n',
                         "csv")
    assert rows[0].inputs == [InputSpec("text", "a dog, running", 0.7)]
    assert rows[0].outputs == ["image", "text"]
    lines = parse_prompts("one\n\n two \n", "lines", outputs=["video"])
    assert [p.inputs[0].value for p in lines] == ["one", "two"]
    assert lines[1].outputs == ["video"]
    with pytest.raises(CoDiUserError, match="line 1"):
        parse_prompts("{nope\n", "jsonl")


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("CODI_DATA_DIR", str(tmp_path / "env"))
    assert data_dir(tmp_path / "x") == tmp_path / "x"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("CODI_DATA_DIR")
    assert data_dir() == Path("codi-data")
    assert database_path(tmp_path).name == "evaluation.sqlite3"


# -- store --------------------------------------------------------------------------------------

def test_create_session_copies_media_and_is_versioned(store, tmp_path):
    media = tmp_path / "uploads"
    media.mkdir()
    (media / "cat.png").write_bytes(b"fake png")
    spec = make_spec(prompts=1)
    spec.prompts[0].inputs.append(InputSpec("image", "cat.png"))
    session_id = store.create_session(spec, media_root=media)
    stored = store.spec(session_id).prompts[0].inputs[1].value
    assert not Path(stored).is_absolute()
    assert (store.data_dir / stored).read_bytes() == b"fake png"
    info = store.session(session_id)
    assert info["counts"] == {"pending": 4, "done": 0, "failed": 0}
    assert [s["id"] for s in store.sessions()] == [session_id]
    assert store.schema_version() == SCHEMA_VERSION
    missing = make_spec()
    missing.prompts[0].inputs.append(InputSpec("audio", "nope.wav"))
    with pytest.raises(CoDiUserError, match="does not exist"):
        store.create_session(missing, media_root=media)
    assert len(store.sessions()) == 1


def test_newer_schema_is_refused(store):
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(CoDiUserError, match="newer"):
        EvaluationStore(store.path)


def test_votes_are_checked_and_append_only(store):
    session_id = store.create_session(make_spec())
    cell = store.cells(session_id)[0]
    with pytest.raises(CoDiUserError, match="not both generated"):
        store.record_vote(session_id, "ann", "p0", 1, "sys0", "sys1", "a")
    for c in store.cells(session_id):
        store.mark_cell(c.id, "done", {"image": "x.png"}, {"k": 1})
    assert store.cell(cell.id).metadata == {"k": 1}
    with pytest.raises(CoDiUserError, match="rater"):
        store.record_vote(session_id, "   ", "p0", 1, "sys0", "sys1", "a")
    with pytest.raises(CoDiUserError, match="rater"):
        store.record_vote(session_id, "x" * 65, "p0", 1, "sys0", "sys1", "a")
    with pytest.raises(CoDiUserError, match="one of"):
        store.record_vote(session_id, "ann", "p0", 1, "sys0", "sys1", "left")
    first = store.record_vote(session_id, "  Ann Lee ", "p0", 1, "sys0", "sys1", "a")
    second = store.record_vote(session_id, "Ann Lee", "p0", 1, "sys1", "sys0", "tie")
    votes = store.votes(session_id)
    assert [v["id"] for v in votes] == [first, second]
    assert {v["rater"] for v in votes} == {"Ann Lee"}
    store.record_rating(cell.id, "ann", "quality", 5, " good ")
    with pytest.raises(CoDiUserError, match="1 to 5"):
        store.record_rating(cell.id, "ann", "quality", 6)
    with pytest.raises(CoDiUserError, match="Criterion"):
        store.record_rating(cell.id, "ann", "smell", 3)
    (rating,) = store.ratings(session_id)
    assert (rating["system"], rating["score"], rating["comment"]) == (cell.system, 5, "good")


_VOTER = textwrap.dedent("""
    import sys
    from codi.evaluation.store import EvaluationStore
    store = EvaluationStore(sys.argv[1])
    session, count = sys.argv[2], int(sys.argv[3])
    systems = [("sys0", "sys1"), ("sys0", "sys2"), ("sys1", "sys2")]
    for n in range(count):
        a, b = systems[n % 3]
        vote = store.record_vote(session, sys.argv[4], f"p{n % 2}", 1 + n % 2, a, b, "a")
        print(vote, flush=True)
""")


def _voter(store: EvaluationStore, session_id: str, count: int, rater: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _VOTER, str(store.path), session_id, str(count), rater],
        cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_every_returned_vote_survives_kill_9(store):
    session_id = done_session(store, systems=3)
    rng = random.Random()
    child = _voter(store, session_id, 1_000_000, "crash")
    first = child.stdout.readline()
    assert first.strip().isdigit()
    time.sleep(rng.uniform(0.2, 1.5))
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read()
    child.wait()
    assert child.returncode == -signal.SIGKILL
    returned = {int(line) for line in [first, *rest.splitlines()] if line.strip().isdigit()}
    reopened = EvaluationStore(store.path)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    stored = {v["id"] for v in reopened.votes(session_id)}
    assert len(returned) > 1
    assert returned <= stored
    assert len(stored) - len(returned) <= 1  # at most the vote committed as the kill came


def test_concurrent_votes_from_threads_and_processes_all_count(store):
    session_id = done_session(store, systems=3)
    per_thread, threads, processes = 15, 8, 3
    children = [_voter(store, session_id, per_thread, f"proc{i}") for i in range(processes)]
    errors: list[BaseException] = []

    def vote(rater: str) -> None:
        try:
            for n in range(per_thread):
                store.record_vote(session_id, rater, f"p{n % 2}", 1, "sys0", "sys2", "b")
        except BaseException as error:  # noqa: BLE001 — reported below
            errors.append(error)

    workers = [threading.Thread(target=vote, args=(f"thread{i}",)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    outputs = [child.communicate()[0] for child in children]
    assert not errors
    assert all(child.returncode == 0 for child in children)
    votes = store.votes(session_id)
    assert len(votes) == per_thread * (threads + processes)
    assert len({v["id"] for v in votes}) == len(votes)
    for i, output in enumerate(outputs):
        ids = {int(line) for line in output.split()}
        assert ids == {v["id"] for v in votes if v["rater"] == f"proc{i}"}
    for i in range(threads):
        assert sum(v["rater"] == f"thread{i}" for v in votes) == per_thread


# -- pairing ------------------------------------------------------------------------------------

def test_pairing_covers_every_pair_once_per_rater_with_both_sides(store):
    session_id = done_session(store, systems=3, seeds=(1,))
    rng = random.Random(5)
    assert progress(store, session_id, "ann") == (0, 6)
    seen, swaps = set(), set()
    while (comparison := next_comparison(store, session_id, "ann", rng)) is not None:
        key = (comparison.prompt_id, comparison.seed,
               frozenset((comparison.system_a, comparison.system_b)))
        assert key not in seen
        seen.add(key)
        swaps.add(comparison.swapped)
        shown = {comparison.left.system, comparison.right.system}
        assert shown == {comparison.system_a, comparison.system_b}
        assert (comparison.left.system == comparison.system_b) == comparison.swapped
        store.record_vote(session_id, "ann", comparison.prompt_id, comparison.seed,
                          comparison.system_a, comparison.system_b, comparison.choice_for("left"))
        assert store.votes(session_id)[-1]["choice"] == ("b" if comparison.swapped else "a")
    assert len(seen) == 6 and swaps == {True, False}
    assert progress(store, session_id, "ann") == (6, 6)
    assert progress(store, session_id, "bob") == (0, 6)


def test_pairing_only_offers_generated_pairs(store):
    session_id = store.create_session(make_spec(prompts=1, seeds=(1,)))
    assert next_comparison(store, session_id, "ann") is None
    for cell in store.cells(session_id):
        store.mark_cell(cell.id, "done", {"image": "x.png"}, {})
    assert next_comparison(store, session_id, "ann") is not None
