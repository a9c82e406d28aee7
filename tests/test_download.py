"""`python -m codi download` against a fake Hub serving small local files (no network).

Only the two Hub calls are replaced (tests/fake_hub.py); checksums, conversion, tokenizers and
the move into place are the real code. The model is a toy component standing in for CoDi's.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil

import huggingface_hub
import pytest
import torch
from fake_hub import TOY, ToyStack, hub_cache, install_fake_hub, toy_file

from codi import cli
from codi.convert.sources import OFFICIAL_FILES, OFFICIAL_REPO
from codi.errors import CoDiUserError
from codi.store import download
from codi.store.model_store import resolve_model
from codi.store.tokenizers import load_tokenizers


@pytest.fixture
def hub(tmp_path, monkeypatch):
    return install_fake_hub(tmp_path, monkeypatch)


def test_download_verifies_converts_and_is_found_by_auto(hub, tmp_path):
    folder = download.download(download_dest := tmp_path / "codi-home/models/ZinengTang--CoDi")
    assert folder == download_dest
    assert [p for _, p in hub.downloads] == list(OFFICIAL_FILES)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["kind"] == "full" and index["model_id"] == OFFICIAL_REPO
    assert index["source_sha256"] == {n: hub.sha256[n] for n in OFFICIAL_FILES}
    assert set(index["weights_sha256"]) == {"toy"}
    tokenizers = load_tokenizers(folder)
    assert tokenizers["optimus_gpt2"].convert_tokens_to_ids("<EOS>") == 50259
    assert not (tmp_path / "codi-home/models/ZinengTang--CoDi.partial").exists()
    resolved = resolve_model("auto")
    assert resolved.folder == folder.resolve() and resolved.kind == "full" and resolved.note == ""


def test_fp16_variant_takes_the_fp16_folder(hub, tmp_path):
    download.download(tmp_path / "m", variant="fp16")
    assert [p for _, p in hub.downloads] == [f"checkpoints_fp16/{n}" for n in OFFICIAL_FILES]
    converted = ToyStack.from_pretrained(tmp_path / "m" / "toy")
    expected = torch.load(hub.root / "checkpoints_fp16" / OFFICIAL_FILES[2])["toy.layers.2.weight"]
    torch.testing.assert_close(converted.layers[2].weight.data, expected, rtol=0, atol=0)


def test_checksum_mismatch_is_a_clear_error_and_deletes_the_bad_copy(hub, tmp_path):
    hub.sha256[OFFICIAL_FILES[1]] = "0" * 64
    bad = OFFICIAL_FILES[1]
    with pytest.raises(CoDiUserError, match=f"{bad} is corrupt.*run the command again"):
        download.download(tmp_path / "m")
    assert not (hub.cache / OFFICIAL_FILES[1]).exists()
    assert not (tmp_path / "m").exists()


def test_offline_hub_is_a_clear_error(hub, tmp_path):
    hub.offline = True
    with pytest.raises(CoDiUserError, match="Could not read the file list.*HF_HUB_OFFLINE"):
        download.download(tmp_path / "m")


def test_cli_download_and_its_error_line(hub, tmp_path, capsys):
    assert cli.main(["download", "--dest", str(tmp_path / "m")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "m")
    assert "--model auto does not look in" in err
    hub.sha256[OFFICIAL_FILES[0]] = "f" * 64
    shutil.rmtree(hub.cache)
    assert cli.main(["download", "--dest", str(tmp_path / "m2")]) == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and "is corrupt" in err_lines[0]


@pytest.fixture
def preloaded(tmp_path, monkeypatch):
    """The fp16 official files (toy stand-ins) in a local Hugging Face cache; no Hub at all."""
    cache = tmp_path / "hf-hub"
    files = {f"checkpoints_fp16/{n}": toy_file(i, seed=10) for i, n in enumerate(OFFICIAL_FILES)}
    hub_cache(cache, OFFICIAL_REPO, files)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(download, "HfApi", None)  # any Hub call would fail loudly
    monkeypatch.setattr(download, "hf_hub_download", None)
    monkeypatch.setattr("codi.convert.core.all_specs", lambda: (TOY,))
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "codi-home"))
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)
    return cache, files


def test_a_space_converts_its_preloaded_files_once_and_serves_them(preloaded, monkeypatch):
    from codi.store import preloaded as preloaded_module
    from codi.store.model_store import default_model_dir

    cache, files = preloaded
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert resolve_model("auto").kind != "full"  # not on a Space: today's behaviour
    monkeypatch.setenv("SPACE_ID", "someone/codi-studio")
    resolved = resolve_model("auto")
    assert resolved.kind == "full" and resolved.folder == default_model_dir().resolve()
    index = json.loads((resolved.folder / "model_index.json").read_text())
    assert index["variant"] == "fp16"
    assert index["source_sha256"] == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    converted = ToyStack.from_pretrained(resolved.folder / "toy")
    expected = torch.load(io.BytesIO(files[f"checkpoints_fp16/{OFFICIAL_FILES[3]}"]))
    torch.testing.assert_close(converted.layers[3].weight.data,
                               expected["toy.layers.3.weight"], rtol=0, atol=0)
    assert load_tokenizers(resolved.folder)["optimus_gpt2"].convert_tokens_to_ids("<EOS>") == 50259
    monkeypatch.setattr(preloaded_module, "convert_into",
                        lambda *a, **k: pytest.fail("converted a second time"))
    assert resolve_model("auto").folder == resolved.folder


def test_a_corrupt_preloaded_file_leaves_the_embedded_model_with_a_note(preloaded, monkeypatch):
    cache, files = preloaded
    (blob,) = [p for p in cache.rglob("blobs/*")
               if p.name == hashlib.sha256(files[f"checkpoints_fp16/{OFFICIAL_FILES[1]}"])
               .hexdigest()]
    blob.write_bytes(b"truncated")
    monkeypatch.setenv("SPACE_ID", "someone/codi-studio")
    resolved = resolve_model("auto")
    assert resolved.kind != "full"
    assert f"checkpoints_fp16/{OFFICIAL_FILES[1]} is corrupt" in resolved.note
    assert not list((preloaded[0].parent / "codi-home").rglob("model_index.json"))


def test_full_without_the_files_says_how_to_get_them(preloaded, monkeypatch):
    cache, _ = preloaded
    shutil.rmtree(cache)
    with pytest.raises(CoDiUserError, match="python -m codi download --variant fp16"):
        resolve_model("full")


def test_the_space_front_matter_preloads_exactly_the_fp16_files():
    from test_readme import front_matter_and_body

    meta, _ = front_matter_and_body()
    repo, files = meta["preload_from_hub"].split()
    assert repo == OFFICIAL_REPO
    assert files.split(",") == download.repo_paths("fp16")
