"""Which model folder `--model` / "auto" resolves to."""

from __future__ import annotations

import json

import pytest

from codi.errors import CoDiUserError
from codi.store import model_store
from codi.store.model_store import default_model_dir, resolve_model
from codi.store.tiny_random import TINY_RANDOM_DIR


def make_model(folder, **index):
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "CoDiPipeline", **index}))
    return folder


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)


@pytest.fixture(autouse=True)
def no_nano(tmp_path, monkeypatch):
    """These tests are about the fallback order; CoDi-Nano's own place is tested below."""
    monkeypatch.setattr(model_store, "NANO_DIR", tmp_path / "no-nano")


def test_auto_falls_back_to_the_embedded_model_with_a_plain_note():
    for spec in (None, "auto", "embedded", "tiny"):
        resolved = resolve_model(spec)
        assert resolved.folder == TINY_RANDOM_DIR.resolve()
        assert resolved.kind == "tiny-random"
        assert "random-weight" in resolved.note and "`python -m codi download`" in resolved.note


def test_auto_prefers_the_downloaded_model(tmp_path):
    assert default_model_dir() == tmp_path / "home" / "models" / "ZinengTang--CoDi"
    make_model(default_model_dir(), kind="full")
    resolved = resolve_model("auto")
    assert resolved.folder == default_model_dir().resolve()
    assert (resolved.kind, resolved.note) == ("full", "")


def test_a_half_written_download_is_ignored(tmp_path):
    default_model_dir().mkdir(parents=True)  # no model_index.json yet
    assert resolve_model("auto").kind == "tiny-random"


def test_configured_folder_comes_first(tmp_path, monkeypatch):
    make_model(default_model_dir(), kind="full")
    mine = make_model(tmp_path / "mine", kind="custom", note="my note")
    monkeypatch.setenv("CODI_MODEL_DIR", str(mine))
    assert resolve_model(None) == model_store.ResolvedModel(mine.resolve(), "custom", "my note")


def test_a_bad_configured_folder_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CODI_MODEL_DIR", str(tmp_path))
    with pytest.raises(CoDiUserError, match="CODI_MODEL_DIR=.*no model_index.json"):
        resolve_model("auto")


def test_explicit_path_must_exist_and_be_a_model(tmp_path):
    with pytest.raises(CoDiUserError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(CoDiUserError, match="no model_index.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(CoDiUserError, match="cannot be read"):
        resolve_model(tmp_path)
    folder = make_model(tmp_path / "converted")
    assert resolve_model(str(folder)).kind == "full"


def test_missing_embedded_model_says_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(model_store, "TINY_RANDOM_DIR", tmp_path / "gone")
    with pytest.raises(CoDiUserError, match="python -m codi.store.tiny_random build"):
        resolve_model("auto")


def test_nano_is_the_embedded_default_when_present(tmp_path, monkeypatch):
    nano = make_model(tmp_path / "codi-nano", kind="nano", note="nano note")
    monkeypatch.setattr(model_store, "NANO_DIR", nano)
    for spec in (None, "auto", "embedded", "nano"):
        assert resolve_model(spec) == model_store.ResolvedModel(nano.resolve(), "nano", "nano note")
    assert resolve_model("tiny").kind == "tiny-random"


def test_missing_nano_says_how_to_train_it():
    with pytest.raises(CoDiUserError, match="python -m codi.train nano"):
        resolve_model("nano")
