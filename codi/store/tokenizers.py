"""CoDi's three tokenizers: built from vocabulary files, saved into a model folder, read back.

- CLIP (conditioning prompts): `load_clip_tokenizer`, from `vocab.json` + `merges.txt`;
- Optimus BERT (text encoder): `optimus_bert_tokenizer`, from `bert-base-cased-vocab.txt`;
- Optimus GPT-2 (text decoder): `optimus_gpt2_tokenizer`, from `gpt2-vocab.json` and
  `gpt2-merges.txt`.

Every file is found by `read_vocab_file` under its Hub or official name, plain or gzip'd, with the
parity data's `clip_` / `optimus_` prefixes. A converted folder keeps each tokenizer in a
sub-folder, gzip'd, under the names these builders read, so every folder loads the same way:

    tokenizer_clip/          clip_vocab.json.gz, clip_merges.txt.gz
    tokenizer_optimus_bert/  optimus_bert-base-cased-vocab.txt.gz
    tokenizer_optimus_gpt2/  optimus_gpt2-vocab.json.gz, optimus_gpt2-merges.txt.gz

The files come from a local vocab folder or, for the real model, from the Hub repos the official
code uses. `python -m codi.store.tokenizers DST [--vocab DIR]` adds them to an existing folder.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import BertTokenizer, CLIPTokenizer, GPT2Tokenizer

from codi.errors import CoDiUserError
from codi.models.clip import CLIP_MAX_LENGTH

BERT_VOCAB = "bert-base-cased-vocab.txt"
GPT2_VOCAB = "gpt2-vocab.json"
GPT2_MERGES = "gpt2-merges.txt"
#: Added to GPT-2 in this order, so they get ids 50257, 50258, 50259.
GPT2_ADDED_TOKENS = {"pad_token": "<PAD>", "bos_token": "<BOS>", "eos_token": "<EOS>"}
#: BERT's position table length; longer token sequences are cut, as in the official encode.
BERT_MAX_LENGTH = 512
#: Prefixes the parity data and the saved folders put before a vocabulary file's name.
VOCAB_PREFIXES = ("", "clip_", "optimus_")


def read_vocab_file(vocab_dir: Path, *names: str) -> bytes:
    """The first of `names` found in `vocab_dir`: plain or `.gz`, with or without a prefix."""
    vocab_dir = Path(vocab_dir)
    for name in names:
        for prefix in VOCAB_PREFIXES:
            for candidate in (vocab_dir / f"{prefix}{name}", vocab_dir / f"{prefix}{name}.gz"):
                if candidate.is_file():
                    raw = candidate.read_bytes()
                    return gzip.decompress(raw) if candidate.suffix == ".gz" else raw
    raise CoDiUserError(
        f"{vocab_dir} has no {names[0]} (also looked for {', '.join(names[1:]) or 'nothing else'}, "
        "with clip_/optimus_ prefixes and .gz copies)."
    )


def _merges(text: str) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in text.splitlines()
            if line and not line.startswith("#version")]


def load_clip_tokenizer(vocab_dir: Path) -> CLIPTokenizer:
    """CLIP's BPE tokenizer (pad with `codi.models.clip.tokenize`: CoDi pads with the end token)."""
    vocab = json.loads(read_vocab_file(vocab_dir, "vocab.json"))
    merges = _merges(read_vocab_file(vocab_dir, "merges.txt").decode("utf-8"))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)


def optimus_bert_tokenizer(vocab_dir: Path) -> BertTokenizer:
    """The cased BERT WordPiece tokenizer, no lower-casing (CoDi lower-cases the text itself)."""
    lines = read_vocab_file(vocab_dir, BERT_VOCAB).decode("utf-8").split("\n")
    vocab = {token: i for i, token in enumerate(t.rstrip("\r") for t in lines if t.rstrip("\r"))}
    return BertTokenizer(vocab=vocab, do_lower_case=False, strip_accents=False)


def optimus_gpt2_tokenizer(vocab_dir: Path) -> GPT2Tokenizer:
    """The GPT-2 byte-level BPE with <PAD>=50257, <BOS>=50258, <EOS>=50259 added."""
    vocab = json.loads(read_vocab_file(vocab_dir, GPT2_VOCAB))
    merges = _merges(read_vocab_file(vocab_dir, GPT2_MERGES).decode("utf-8"))
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens(dict(GPT2_ADDED_TOKENS))
    return tokenizer


def optimus_bert_token_ids(tokenizer: BertTokenizer, sentences: Sequence[str]) -> torch.Tensor:
    """CoDi's encoder input: lower-cased text, [CLS] ... [SEP], right-padded with 0, (B, T)."""
    rows = [
        torch.tensor(tokenizer(sentence.lower(), add_special_tokens=True)["input_ids"])
        for sentence in sentences
    ]
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0)
    return padded[:, :BERT_MAX_LENGTH]


def tokenizers_from_vocab(vocab_dir: Path) -> dict[str, Any]:
    """Every tokenizer CoDi uses, from one folder of vocab files (e.g. shared/parity/vocab).

    Keys: "clip" (conditioning prompts), "optimus_bert" (text encoder), "optimus_gpt2" (text out).
    """
    return {
        "clip": load_clip_tokenizer(vocab_dir),
        "optimus_bert": optimus_bert_tokenizer(vocab_dir),
        "optimus_gpt2": optimus_gpt2_tokenizer(vocab_dir),
    }


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
            data = (_hub_bytes(file) if vocab_dir is None
                    else read_vocab_file(Path(vocab_dir), *file.local_names))
            path = out / file.saved
            path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            files.append(path)
    load_tokenizers(dst)  # fail here, not at generation time, if a file does not parse
    return files


def load_tokenizers(folder: Path) -> dict[str, Any]:
    """{"clip": CLIPTokenizer, "optimus_bert": BertTokenizer, "optimus_gpt2": GPT2Tokenizer}."""
    folder = Path(folder)
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_dir()]
    if missing:
        raise CoDiUserError(
            f"{folder} has no tokenizers ({', '.join(missing)} missing). Add them with "
            f"`python -m codi.store.tokenizers {folder}` (add --vocab DIR when offline)."
        )
    return {
        "clip": load_clip_tokenizer(folder / "tokenizer_clip"),
        "optimus_bert": optimus_bert_tokenizer(folder / "tokenizer_optimus_bert"),
        "optimus_gpt2": optimus_gpt2_tokenizer(folder / "tokenizer_optimus_gpt2"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codi.store.tokenizers",
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
