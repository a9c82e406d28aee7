"""A fake Hugging Face Hub serving small local files, and a toy model standing in for CoDi's.

Only the two Hub calls (`HfApi().get_paths_info`, `hf_hub_download`) are replaced; checksums,
conversion, tokenizers and the move into place stay the real code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from huggingface_hub.errors import OfflineModeIsEnabled

from codi.convert.sources import OFFICIAL_FILES
from codi.convert.spec import ComponentSpec, rename_map
from codi.store import download
from codi.store.assets import VOCAB_DIR

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
        #: A repo path whose download fails like a dropped connection (None: none fails).
        self.fail_on: str | None = None
        self.chunk = 256
        #: A repo path whose download stops after its first chunk until `resume` is set
        #: (`paused` tells that it got there), so a test can look at progress mid-download.
        self.pause_in: str | None = None
        self.paused, self.resume = threading.Event(), threading.Event()

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
                    SimpleNamespace(path=p, size=(hub.root / p).stat().st_size,
                                    lfs=SimpleNamespace(sha256=hub.sha256[p]))
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
        if self.fail_on == path:
            raise OSError(f"connection reset while downloading {path}")
        local = self.cache / path
        local.parent.mkdir(parents=True, exist_ok=True)
        data = (self.root / path).read_bytes()
        bar_class = kwargs.get("tqdm_class")
        bar = bar_class(total=len(data), initial=0, unit="B", desc=filename) if bar_class else None
        with local.open("wb") as out:
            for start in range(0, len(data), self.chunk):  # as the Hub streams a file
                out.write(data[start:start + self.chunk])
                if bar is not None:
                    bar.update(len(data[start:start + self.chunk]))
                if path == self.pause_in and start == 0:
                    self.paused.set()
                    assert self.resume.wait(30), "the test never resumed the download"
        if bar is not None:
            bar.close()
        return str(local)


def toy_file(index: int, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed + index)
    buffer = io.BytesIO()
    torch.save({f"toy.layers.{index}.weight": torch.randn(3, 3, generator=g)}, buffer)
    return buffer.getvalue()


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


def install_fake_hub(tmp_path: Path, monkeypatch) -> FakeHub:
    """The fake Hub in place of huggingface_hub's two calls, toy official files (fp32 and
    fp16) on it, the toy converter spec, and a fresh CODI_HOME."""
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
