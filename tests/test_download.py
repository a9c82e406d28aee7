"""`python -m codi download` against a fake Hub serving small local files (no network).

Only the two Hub calls are replaced; checksums, conversion, tokenizers and the move into place
are the real code. The model is a toy component standing in for CoDi's (as in test_convert).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from huggingface_hub.errors import OfflineModeIsEnabled

from codi import cli
from codi.convert.sources import OFFICIAL_FILES, OFFICIAL_REPO
from codi.convert.spec import ComponentSpec, rename_map
from codi.errors import CoDiUserError
from codi.store import download
from codi.store.assets import VOCAB_DIR
from codi.store.model_store import resolve_model
from codi.store.tokenizers import load_tokenizers

#: Hub tokenizer files → the gzip'd copies shipped in assets/vocab.
HUB_VOCAB = {
    ("openai/clip-vit-large-patch14", "vocab.json"): "clip_vocab.json.gz",
    ("openai/clip-vit-large-patch14", "merges.txt"): "clip_merges.txt.gz",
    ("gpt2", "vocab.json"): "optimus_gpt2-vocab.json.gz",
    ("gpt2", "merges.txt"): "optimus_gpt2-merges.txt.gz",
    ("bert-base-cased", "vocab.txt"): "optimus_bert-base-cased-vocab.txt.gz",
}


class ToyStack(ModelMixin, ConfigMixin):
    """One linear layer per official file, so the conversion spans all four files."""

    @register_to_config
    def __init__(self, count: int = 4) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(3, 3, bias=False) for _ in range(count))


TOY = ComponentSpec(
    name="toy",
    prefixes=("toy.",),
    model_class=ToyStack,
    build=lambda official: ToyStack(),
    map_tensor=rename_map([(r"layers\.(\d)\.weight", r"layers.\1.weight")]),
)


class FakeHub:
    """Serves files from a folder and records the calls, like the two huggingface_hub calls."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.root, self.cache, self.downloads = root, cache, []
        self.sha256: dict[str, str] = {}
        self.offline = False

    def add(self, path: str, data: bytes) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_bytes(data)
        self.sha256[path] = hashlib.sha256(data).hexdigest()

    def api(self):
        hub = self

        class Api:
            def get_paths_info(self, repo_id, paths):
                if hub.offline:
                    raise OfflineModeIsEnabled("offline mode is enabled")
                return [
                    SimpleNamespace(path=p, lfs=SimpleNamespace(sha256=hub.sha256[p]))
                    for p in paths if p in hub.sha256
                ]

        return Api

    def hf_hub_download(self, repo_id, filename, subfolder=None, **kwargs):
        if (repo_id, filename) in HUB_VOCAB:
            local = self.cache / repo_id / filename
            local.parent.mkdir(parents=True, exist_ok=True)
            shipped = VOCAB_DIR / HUB_VOCAB[repo_id, filename]
            local.write_bytes(gzip.decompress(shipped.read_bytes()))
            return str(local)
        path = f"{subfolder}/{filename}" if subfolder else filename
        self.downloads.append((repo_id, path))
        local = self.cache / path
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / path, local)
        return str(local)


def toy_file(index: int, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed + index)
    buffer = io.BytesIO()
    torch.save({f"toy.layers.{index}.weight": torch.randn(3, 3, generator=g)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub", tmp_path / "hf-cache")
    for i, name in enumerate(OFFICIAL_FILES):
        fake.add(name, toy_file(i))
        fake.add(f"checkpoints_fp16/{name}", toy_file(i, seed=10))
    monkeypatch.setattr(download, "HfApi", fake.api())
    monkeypatch.setattr(download, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr("codi.convert.core.all_specs", lambda: (TOY,))
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "codi-home"))
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)
    return fake


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


def hub_cache(root: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """A Hugging Face cache as a Space build's `preload_from_hub` leaves it: snapshot paths
    linked to blobs named by their sha256."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for path, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)


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
