"""Text out of a CoDi text latent: Optimus GPT-2 token generation, detokenisation, clean-up.

The official decoding samples (temperature 1, no top-k, top-p 1.0, at most 30 tokens from <BOS>)
and re-runs the whole prefix each step; `generate_tokens` does the same, one latent at a time, so
the random draws come in the official order; they are made on the CPU whatever the device
(`draw_token`). Greedy and temperature are options for later use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

#: Official generation settings (reference §4.4, docs/quirks.md).
MAX_LENGTH = 30
TOP_K = 0
TOP_P = 1.0


def filter_logits(logits: torch.Tensor, top_k: int = TOP_K, top_p: float = TOP_P) -> torch.Tensor:
    """Top-k then nucleus filtering over the last axis; removed entries become -inf.

    Nucleus: sort descending, cumulative softmax; drop every token after the first one whose
    cumulative probability exceeds `top_p` (the best token is always kept). With top_p = 1.0 this
    still drops the tail where the float32 cumsum rounds above 1, as the official code does.
    """
    logits = logits.clone()
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p > 0.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        beyond = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1) > top_p
        drop = torch.zeros_like(beyond)
        drop[..., 1:] = beyond[..., :-1]
        logits[drop.scatter(-1, order, drop)] = float("-inf")
    return logits


def draw_token(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id `(1,)` drawn from `probs` `(V,)`, on the CPU, returned on `probs`' device.

    The draw happens on the CPU with `generator` (a CPU generator; None: torch's default one)
    whatever device ran the decoder, so one seed gives the same text on CPU and GPU (a CUDA
    generator would draw a different stream). The copy is one row of probabilities per token.
    """
    return torch.multinomial(probs.float().cpu(), 1, generator=generator).to(probs.device)


@torch.no_grad()
def generate_tokens(
    decoder: torch.nn.Module,
    latent: torch.Tensor,
    bos_id: int,
    eos_id: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int = TOP_K,
    top_p: float = TOP_P,
    max_length: int = MAX_LENGTH,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Token ids (L,) for one latent (latent_size,), starting with <BOS> and ending with <EOS>.

    Each step runs the decoder over the whole prefix and draws the next token from the filtered
    softmax with `draw_token` (or takes the argmax when `greedy`). It stops after <EOS>; at
    `max_length` tokens (BOS included) the last one is replaced by <EOS>.
    """
    ids = torch.tensor([[bos_id]], dtype=torch.long, device=latent.device)
    latent = latent[None]
    while True:
        logits = decoder(ids, latent)[0, -1].float()
        if greedy:
            token = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            token = draw_token(probs, generator)
        ids = torch.cat([ids, token[None]], dim=1)
        if token.item() == eos_id:
            break
        if ids.shape[1] >= max_length:
            ids[0, -1] = eos_id
            break
    return ids[0]


def detokenize(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str:
    """GPT-2 ids → text as the Optimus-era tokenizer decoded them.

    Runs of vocabulary tokens are byte-level decoded; each added token (<PAD>/<BOS>/<EOS>) is
    emitted as " <TOKEN>"; then the tokenization spaces are cleaned up. (transformers 5 glues added
    tokens without the space, which would break the official word-level trimming.)
    """
    added = {
        i: t.content for i, t in tokenizer.added_tokens_decoder.items() if i >= tokenizer.vocab_size
    }
    pieces: list[str] = []
    run: list[int] = []
    for token_id in [int(i) for i in ids] + [None]:
        if token_id is None or token_id in added:
            if run:
                pieces.append(tokenizer.decode(run, clean_up_tokenization_spaces=False))
                run = []
            if token_id is not None:
                pieces.append(" " + added[token_id])
        else:
            run.append(token_id)
    return clean_up_tokenization("".join(pieces))


def clean_up_tokenization(text: str) -> str:
    """Remove spaces before punctuation and inside English contractions (Optimus-era rules)."""
    for before, after in (
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
        (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ):
        text = text.replace(before, after)
    return text


def strip_special_words(text: str) -> str:
    """Drop the first and last whitespace-separated words (the <BOS> and <EOS> markers)."""
    return " ".join(text.split()[1:-1])


@torch.no_grad()
def decode_text_latents(
    decoder: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    latents: torch.Tensor,
    **generate_options,
) -> list[str]:
    """Official `optimus_decode` on unscaled latents (B, latent_size): one string per latent."""
    bos_id = tokenizer.convert_tokens_to_ids("<BOS>")
    eos_id = tokenizer.convert_tokens_to_ids("<EOS>")
    texts = []
    for latent in latents:
        ids = generate_tokens(decoder, latent, bos_id, eos_id, **generate_options)
        texts.append(strip_special_words(detokenize(tokenizer, ids.tolist())))
    return texts


def postprocess_text(text: str) -> str:
    """CoDi's text clean-up: drop words equal to their predecessor, then repeated n-grams."""
    words: list[str] = []
    for word in text.split():
        if not words or word != words[-1]:
            words.append(word)
    return remove_repeated_ngrams(" ".join(words))


_LEADING = re.compile(r"^([(\[{\"']+)(.*)$", re.S)
_TRAILING = re.compile(r"^(.*?)([.,!?;:)\]}\"']+)$", re.S)


def remove_repeated_ngrams(text: str) -> str:
    """Delete immediately repeated n-grams (n = 1, 2, ...), punctuation-aware.

    Opening brackets/quotes and trailing punctuation are split off each word as tokens of their
    own that remember they were glued to their neighbour; tokens (text + glue) are compared, every
    second copy of a repeated n-gram is removed until none is left, and the pieces are re-glued.
    """
    tokens = _split_punctuation(text)
    n = 1
    while 2 * n <= len(tokens):
        tokens = _drop_repeats(tokens, n)
        n += 1
    out = ""
    for piece, glued in tokens:
        out += piece if glued or not out else " " + piece
    return out


def _split_punctuation(text: str) -> list[tuple[str, bool]]:
    """Words → [(piece, glued_to_previous)], leading openers and trailing punctuation apart."""
    tokens: list[tuple[str, bool]] = []
    for word in text.split():
        glued = False
        lead = _LEADING.match(word)
        if lead and lead.group(2):
            tokens.append((lead.group(1), False))
            word, glued = lead.group(2), True
        trail = _TRAILING.match(word)
        if trail and trail.group(1):
            tokens += [(trail.group(1), glued), (trail.group(2), True)]
        else:
            tokens.append((word, glued))
    return tokens


def _drop_repeats(tokens: list[tuple[str, bool]], n: int) -> list[tuple[str, bool]]:
    """Remove the second copy of an immediately repeated n-gram, rescanning, until none is left."""
    i = 0
    while i + 2 * n <= len(tokens):
        if tokens[i:i + n] == tokens[i + n:i + 2 * n]:
            del tokens[i + n:i + 2 * n]
            i = 0
        else:
            i += 1
    return tokens
