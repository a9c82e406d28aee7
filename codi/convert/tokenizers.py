"""The three tokenizers of CoDi, saved inside a converted model folder and read back.

Each sub-folder holds the tokenizer's vocabulary files, gzip'd, under the names the builders
(`codi.models.clip.load_clip_tokenizer`, `codi.tokenizers.optimus_*_tokenizer`) read; that keeps
the embedded model small and makes every folder load through the very same builders:

    tokenizer_clip/          clip_vocab.json.gz, clip_merges.txt.gz
    tokenizer_optimus_bert/  optimus_bert-base-cased-vocab.txt.gz
    tokenizer_optimus_gpt2/  optimus_gpt2-vocab.json.gz, optimus_gpt2-merges.txt.gz

The files come from a local vocab folder (plain or gzip'd, Hub or parity-data names) or, for the
real model, from the Hub repos the official code uses.

`python -m codi.convert.tokenizers DST [--vocab DIR]` adds them to an existing folder.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codi.errors import CoDiUserError


@dataclass(frozen=True)
class VocabFile:
    """One vocabulary file: its saved name, the names it may have locally, and its Hub source."""

    saved: str
    local_names: tuple[str, ...]
    hub_repo: str
    hub_name: str


#: Sub-folder → its files. The GPT-2 special tokens are added by the builder, not stored.
TOKENIZER_FILES: dict[str, tuple[VocabFile, ...]] = {
    "tokenizer_clip": (
        VocabFile("clip_vocab.json.gz", ("vocab.json", "clip_vocab.json"),
                  "openai/clip-vit-large-patch14", "vocab.json"),
        VocabFile("clip_merges.txt.gz", ("merges.txt", "clip_merges.txt"),
                  "openai/clip-vit-large-patch14", "merges.txt"),
    ),
    "tokenizer_optimus_bert": (
        VocabFile("optimus_bert-base-cased-vocab.txt.gz",
                  ("bert-base-cased-vocab.txt", "optimus_bert-base-cased-vocab.txt"),
                  "bert-base-cased", "vocab.txt"),
    ),
    "tokenizer_optimus_gpt2": (
        VocabFile("optimus_gpt2-vocab.json.gz", ("gpt2-vocab.json", "optimus_gpt2-vocab.json"),
                  "gpt2", "vocab.json"),
        VocabFile("optimus_gpt2-merges.txt.gz", ("gpt2-merges.txt", "optimus_gpt2-merges.txt"),
                  "gpt2", "merges.txt"),
    ),
}


def _local_bytes(vocab_dir: Path, file: VocabFile) -> bytes:
    for name in file.local_names:
        for candidate in (vocab_dir / name, vocab_dir / f"{name}.gz"):
            if candidate.is_file():
                raw = candidate.read_bytes()
                return gzip.decompress(raw) if candidate.suffix == ".gz" else raw
    raise CoDiUserError(
        f"{vocab_dir} has no {file.local_names[0]} (also looked for "
        f"{', '.join(file.local_names[1:])} and .gz copies)."
    )


def _hub_bytes(file: VocabFile) -> bytes:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(file.hub_repo, file.hub_name)).read_bytes()
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise CoDiUserError(
            f"Could not get {file.hub_name} of the tokenizer {file.hub_repo} from the Hugging Face "
            "Hub (offline, or HF_HUB_OFFLINE=1 and not in the cache). Connect once, or pass "
            "--vocab DIR with the vocabulary files (vocab.json, merges.txt, "
            "bert-base-cased-vocab.txt, gpt2-vocab.json, gpt2-merges.txt)."
        ) from error


def save_tokenizers(dst: Path, vocab_dir: Path | None = None) -> list[Path]:
    """Write the three tokenizer sub-folders into `dst`; returns the files written.

    vocab_dir: a local folder with the vocabulary files; None fetches them from the Hub.
    """
    files = []
    for folder, vocab_files in TOKENIZER_FILES.items():
        out = Path(dst) / folder
        out.mkdir(parents=True, exist_ok=True)
        for file in vocab_files:
            data = _hub_bytes(file) if vocab_dir is None else _local_bytes(Path(vocab_dir), file)
            path = out / file.saved
            path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            files.append(path)
    load_tokenizers(dst)  # fail here, not at generation time, if a file does not parse
    return files


def load_tokenizers(folder: Path) -> dict[str, Any]:
    """{"clip": CLIPTokenizer, "optimus_bert": BertTokenizer, "optimus_gpt2": GPT2Tokenizer}."""
    from codi.models.clip import load_clip_tokenizer
    from codi.tokenizers import optimus_bert_tokenizer, optimus_gpt2_tokenizer

    folder = Path(folder)
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_dir()]
    if missing:
        raise CoDiUserError(
            f"{folder} has no tokenizers ({', '.join(missing)} missing). Add them with "
            f"`python -m codi.convert.tokenizers {folder}` (add --vocab DIR when offline)."
        )
    return {
        "clip": load_clip_tokenizer(folder / "tokenizer_clip"),
        "optimus_bert": optimus_bert_tokenizer(folder / "tokenizer_optimus_bert"),
        "optimus_gpt2": optimus_gpt2_tokenizer(folder / "tokenizer_optimus_gpt2"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codi.convert.tokenizers",
        description="Add CoDi's tokenizers to a converted model folder.",
    )
    parser.add_argument("dst", type=Path, help="converted model folder")
    parser.add_argument("--vocab", type=Path, help="local vocab folder (default: the Hub)")
    args = parser.parse_args(argv)
    try:
        files = save_tokenizers(args.dst, args.vocab)
    except CoDiUserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(str(path) for path in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
