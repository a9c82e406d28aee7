"""Session export (zip: media, JSONL, CSV) and import into a fresh store; unsafe zips refused."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from codi.errors import CoDiUserError
from codi.evaluation import open_store
from codi.evaluation.archive import export_session, import_session, safe_member
from codi.evaluation.spec import InputSpec, PromptItem, SessionSpec, SystemSpec
from codi.evaluation.stats import summary


def rated_session(data: Path, tmp_path: Path) -> tuple[object, str]:
    """A session with an image input, fake outputs for every cell, votes (one re-vote) and
    ratings."""
    store = open_store(data)
    (tmp_path / "cat.png").write_bytes(b"\x89PNG input bytes")
    spec = SessionSpec(
        "archive test",
        [PromptItem("p0", [InputSpec("text", "a cat"), InputSpec("image", "cat.png", 0.5)],
                    ["image", "text"]),
         PromptItem("p1", [InputSpec("text", "a dog")], ["image"])],
        [SystemSpec("a", "tiny", {"steps": 2}), SystemSpec("b", "tiny", {"steps": 4})],
        [1, 2])
    session_id = store.create_session(spec, media_root=tmp_path)
    for cell in store.cells(session_id):
        folder = data / "sessions" / session_id / "media" / f"cell_{cell.id}"
        folder.mkdir(parents=True)
        (folder / "out_image_0.png").write_bytes(f"image of cell {cell.id}".encode())
        outputs = {"image": (folder / "out_image_0.png").relative_to(data).as_posix()}
        store.mark_cell(cell.id, "done", outputs, {"seconds": cell.id})
    store.record_vote(session_id, "ann", "p0", 1, "a", "b", "a")
    store.record_vote(session_id, "ann", "p0", 1, "a", "b", "tie")
    store.record_vote(session_id, "bob, jr", "p1", 2, "b", "a", "both_bad")
    cell = store.cells(session_id)[0]
    store.record_rating(cell.id, "ann", "quality", 4, 'says "meh", really')
    store.record_rating(cell.id, "bob, jr", "faithfulness", 2)
    return store, session_id


def test_export_import_round_trip_into_a_fresh_store(tmp_path):
    store, session_id = rated_session(tmp_path / "one", tmp_path)
    zip_path = export_session(store, session_id, store.data_dir, tmp_path / "out" / "s.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        votes_csv = list(csv.DictReader(io.StringIO(archive.read("votes.csv").decode())))
        ratings_csv = list(csv.DictReader(io.StringIO(archive.read("ratings.csv").decode())))
    assert {"manifest.json", "session.json", "cells.jsonl", "votes.jsonl", "votes.csv",
            "ratings.jsonl", "ratings.csv"} <= names
    assert manifest["counts"] == {"cells": 8, "votes": 3, "ratings": 2}
    assert len([n for n in names if n.startswith("media/")]) == 9
    assert [v["choice"] for v in votes_csv] == ["a", "tie", "both_bad"]
    assert votes_csv[2]["rater"] == "bob, jr"
    assert ratings_csv[0]["comment"] == 'says "meh", really'

    fresh = open_store(tmp_path / "two")
    new_id = import_session(fresh, zip_path, fresh.data_dir)
    assert fresh.session(new_id)["counts"] == store.session(session_id)["counts"]
    strip = ("id", "session_id", "cell_id")
    assert ([{k: v for k, v in row.items() if k not in strip} for row in fresh.votes(new_id)]
            == [{k: v for k, v in row.items() if k not in strip}
                for row in store.votes(session_id)])
    assert ([{k: v for k, v in row.items() if k not in strip} for row in fresh.ratings(new_id)]
            == [{k: v for k, v in row.items() if k not in strip}
                for row in store.ratings(session_id)])
    old_cells = {(c.prompt_id, c.system, c.seed): c for c in store.cells(session_id)}
    for cell in fresh.cells(new_id):
        old = old_cells[(cell.prompt_id, cell.system, cell.seed)]
        assert cell.status == old.status and cell.metadata == old.metadata
        assert cell.outputs["image"].startswith(f"sessions/{new_id}/")
        assert ((fresh.data_dir / cell.outputs["image"]).read_bytes()
                == (store.data_dir / old.outputs["image"]).read_bytes())
    image_input = fresh.spec(new_id).prompts[0].inputs[1]
    assert (fresh.data_dir / image_input.value).read_bytes() == b"\x89PNG input bytes"
    assert image_input.weight == 0.5
    before = summary(store, session_id, bootstrap=10)
    after = summary(fresh, new_id, bootstrap=10)
    for key in ("votes", "raters", "win_rates", "ranking", "criterion_means", "agreement"):
        assert after[key] == before[key]

    again = import_session(store, zip_path, store.data_dir)  # same store: a second copy
    assert again != session_id and len(store.sessions()) == 2


def _rewrite(source: Path, dest: Path, change) -> Path:
    """A copy of the zip `source` with `change(name, data)` → [(name, data), ...] per entry."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w") as new:
        for info in old.infolist():
            for name, data in change(info.filename, old.read(info)):
                new.writestr(name, data)
    return dest


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/owned", "media/../../x",
                                  "media\\..\\x", "C:/x", "media/./x", "media//x"])
def test_import_refuses_paths_that_leave_the_folder(tmp_path, evil):
    assert not safe_member(evil)
    store, session_id = rated_session(tmp_path / "data", tmp_path)
    good = export_session(store, session_id, store.data_dir, tmp_path / "good.zip")
    bad = _rewrite(good, tmp_path / "bad.zip",
                   lambda name, data: [(name, data)] + ([(evil, b"x")] if name == "votes.csv"
                                                        else []))
    fresh = open_store(tmp_path / "fresh")
    with pytest.raises(CoDiUserError, match="outside|unexpected"):
        import_session(fresh, bad, fresh.data_dir)
    assert fresh.sessions() == []
    assert not (tmp_path / "escape.txt").exists()
    assert not (fresh.data_dir / "sessions").exists()


def test_import_refuses_damaged_and_foreign_files(tmp_path):
    store, session_id = rated_session(tmp_path / "data", tmp_path)
    good = export_session(store, session_id, store.data_dir, tmp_path / "good.zip")
    fresh = open_store(tmp_path / "fresh")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    damaged = _rewrite(good, tmp_path / "damaged.zip", lambda name, data: [
        (name, b"tampered" if name.endswith("out_image_0.png") else data)])
    no_votes = _rewrite(good, tmp_path / "novotes.zip", lambda name, data: [
        (name, data)] if name != "votes.jsonl" else [])
    bad_vote = _rewrite(good, tmp_path / "badvote.zip", lambda name, data: [
        (name, data.replace(b'"choice": "tie"', b'"choice": "maybe"'))])
    for path, message in [(tmp_path / "junk.zip", "not a readable zip"),
                          (damaged, "checksum"), (no_votes, "votes.jsonl is missing"),
                          (bad_vote, "unknown prompt, system or seed")]:
        with pytest.raises(CoDiUserError, match=message):
            import_session(fresh, path, fresh.data_dir)
    assert fresh.sessions() == []
    assert not any((fresh.data_dir / "sessions").glob("*/*"))
