"""The temporary-file policy (ui.temp_files, docs/studio.md "Temporary files"): the studio keeps
each session's newest result folders, exports age out, staged uploads never linger, and the
process's temporary folder is gone after the server stops (also on SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codi.errors import CoDiUserError
from ui.form import default_form, request_from_form

REPO = Path(__file__).resolve().parents[1]
FAST = {"steps": 2, "image_size": 64, "randomize_seed": False, "seed": 1, "outputs": ["image"]}


def request(text: str):
    return request_from_form(default_form() | FAST | {"text": text})


def test_a_session_keeps_its_newest_result_folders_only(tmp_path):
    from ui.studio import Studio

    studio = Studio("tiny", output_dir=tmp_path, keep=2)
    results = [studio.generate(request(f"shape {k}"), "ann") for k in range(4)]
    other = studio.generate(request("a circle"), "bob")
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["0003", "0004", "0005"]  # ann's two newest and bob's only one
    assert all(Path(f).exists() for r in results[-2:] for f in [*r.files, r.thumbnail])
    assert not any(Path(f).exists() for r in results[:2] for f in r.files)
    assert studio.forget("ann") == 2 and studio.forget("ann") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0005"]
    assert Path(other.images[0]).exists()


def test_the_default_keep_is_the_history_size_under_the_process_folder():
    from ui.history import MAX_ENTRIES
    from ui.studio import Studio
    from ui.temp_files import process_dir

    studio = Studio("tiny")
    assert studio.keep == MAX_ENTRIES
    assert studio.output_dir.parent == process_dir() / "results"


def test_the_history_holds_at_most_max_entries_numbered_on(monkeypatch):
    import ui.handlers
    from ui.handlers import record
    from ui.history import HistoryEntry

    monkeypatch.setattr(ui.handlers, "MAX_ENTRIES", 3)
    monkeypatch.setattr(ui.handlers, "gallery_items", lambda history: [])
    history: list[HistoryEntry] = []
    for _ in range(5):
        history, _items = record(HistoryEntry({}, None, 0), history)
    assert [entry.number for entry in history] == [3, 4, 5]


def test_exports_older_than_the_limit_are_removed(monkeypatch, tmp_path):
    import ui.temp_files as temp_files

    monkeypatch.setattr(temp_files, "_root", tmp_path)
    old, fresh = temp_files.export_dir(), temp_files.export_dir()
    (old / "session.zip").write_bytes(b"zip")
    stale = time.time() - temp_files.EXPORT_MAX_AGE_S - 5
    os.utime(old, (stale, stale))
    newest = temp_files.export_dir()
    assert not old.exists() and fresh.exists() and newest.exists()
    assert newest.parent == tmp_path / "exports"


def test_staged_uploads_are_removed_when_the_form_is_wrong(monkeypatch, tmp_path):
    import ui.temp_files as temp_files
    from ui.evaluation.forms import build_spec

    monkeypatch.setattr(temp_files, "_root", tmp_path)
    first, second = tmp_path / "prompts.txt", tmp_path / "more.txt"
    first.write_text("a red square\n")
    second.write_text("a blue circle\n")
    with pytest.raises(CoDiUserError, match="seed"):
        build_spec("s", "", [str(first)], ["image"], "[]", "", "")
    with pytest.raises(CoDiUserError, match="one prompt file"):
        build_spec("s", "", [str(first), str(second)], ["image"], "[]", "0", "")
    assert list((tmp_path / "uploads").iterdir()) == []


SERVER = """
import sys, time
from ui.temp_files import process_dir, scratch_dir, serve_from_process_dir
cache = serve_from_process_dir()
(scratch_dir("results") / "out.png").write_bytes(b"png")
cache.mkdir(parents=True)
(cache / "copy.png").write_bytes(b"png")
print(process_dir(), flush=True)
time.sleep(120)
"""


def test_the_process_folder_is_removed_on_sigterm(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("GRADIO_TEMP_DIR", None)
    proc = subprocess.Popen([sys.executable, "-c", SERVER], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = Path(proc.stdout.readline().strip())
    assert root.parent == tmp_path and (root / "gradio" / "copy.png").exists()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert not root.exists() and list(tmp_path.iterdir()) == []
