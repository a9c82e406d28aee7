"""The Optimus tokenizers (BERT for the encoder, GPT-2 for the decoder), built from vocab files.

The official code ships `bert-base-cased-vocab.txt`, `gpt2-vocab.json` and `gpt2-merges.txt`; the
parity data keeps them gzip'd as `optimus_<name>.gz`. Either spelling is accepted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertTokenizer, GPT2Tokenizer

BERT_VOCAB = "bert-base-cased-vocab.txt"
GPT2_VOCAB = "gpt2-vocab.json"
GPT2_MERGES = "gpt2-merges.txt"
#: Added to GPT-2 in this order, so they get ids 50257, 50258, 50259.
GPT2_ADDED_TOKENS = {"pad_token": "<PAD>", "bos_token": "<BOS>", "eos_token": "<EOS>"}
#: BERT's position table length; longer token sequences are cut, as in the official encode.
BERT_MAX_LENGTH = 512


def _read_text(vocab_dir: Path, name: str) -> str:
    """A vocab file by its official name, plain or as the parity data's `optimus_<name>.gz`."""
    vocab_dir = Path(vocab_dir)
    for candidate in (name, f"optimus_{name}", f"{name}.gz", f"optimus_{name}.gz"):
        path = vocab_dir / candidate
        if path.exists():
            raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
            return raw.decode("utf-8")
    raise FileNotFoundError(f"{name} (or optimus_{name}.gz) not found in {vocab_dir}")


def optimus_bert_tokenizer(vocab_dir: Path) -> BertTokenizer:
    """The cased BERT WordPiece tokenizer, no lower-casing (CoDi lower-cases the text itself)."""
    lines = _read_text(vocab_dir, BERT_VOCAB).split("\n")
    vocab = {token: i for i, token in enumerate(t.rstrip("\r") for t in lines if t.rstrip("\r"))}
    return BertTokenizer(vocab=vocab, do_lower_case=False, strip_accents=False)


def optimus_gpt2_tokenizer(vocab_dir: Path) -> GPT2Tokenizer:
    """The GPT-2 byte-level BPE with <PAD>=50257, <BOS>=50258, <EOS>=50259 added."""
    vocab = json.loads(_read_text(vocab_dir, GPT2_VOCAB))
    merges = [
        tuple(line.split(" "))
        for line in _read_text(vocab_dir, GPT2_MERGES).split("\n")
        if line and not line.startswith("#version")
    ]
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


def tokenizers_from_vocab(vocab_dir: Path) -> dict[str, object]:
    """Every tokenizer CoDi uses, from one folder of vocab files (e.g. shared/parity/vocab).

    Keys: "clip" (conditioning prompts), "optimus_bert" (text encoder), "optimus_gpt2" (text out).
    """
    from codi.models.clip import load_clip_tokenizer

    return {
        "clip": load_clip_tokenizer(vocab_dir),
        "optimus_bert": optimus_bert_tokenizer(vocab_dir),
        "optimus_gpt2": optimus_gpt2_tokenizer(vocab_dir),
    }
