"""Parity check of the Optimus text VAE (fixture `optimus`, parity README §3.7, docs/quirks.md)."""

from __future__ import annotations

import torch

from codi.models.optimus_decoding import decode_text_latents, detokenize, postprocess_text
from codi.parity.fixtures import Comparison, FixtureContext, MissingParameter
from codi.parity.tolerances import EXACT, FORWARD_ATOL
from codi.store.tokenizers import (
    optimus_bert_token_ids,
    optimus_bert_tokenizer,
    optimus_gpt2_tokenizer,
)


def _utf8(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.int64)


def _text(name: str, ours: str, official: str) -> Comparison:
    """A string compared exactly, as its UTF-8 bytes (a length mismatch reports inf)."""
    return Comparison(name, _utf8(ours), _utf8(official), EXACT)


def texts_compared(name: str, ours: list[str], official: list[str]) -> list[Comparison]:
    """Strings compared one by one, plus their count (so a missing string is not skipped)."""
    count = Comparison(f"{name} (count)", torch.tensor([len(ours)]),
                       torch.tensor([len(official)]), EXACT)
    pairs = enumerate(zip(ours, official, strict=False))  # a missing one fails the count
    return [count] + [_text(f"{name}[{i}]", a, b) for i, (a, b) in pairs]


def sampled_strings_key(extra: dict) -> str:
    """The `extra` entry holding the official sampled decode (`optimus_decode_seed<N>`: the name
    is a label; the seed comes from the call)."""
    keys = [key for key in extra if key.startswith("optimus_decode")]
    if len(keys) != 1:
        raise MissingParameter("extra.optimus_decode_seed<N> (exactly one)")
    return keys[0]


@torch.no_grad()
def _greedy(decoder: torch.nn.Module, latents: torch.Tensor, bos_id: int, steps: int):
    """The fixture's batched argmax loop: ids (B, steps+1) and each step's max logit (B, steps)."""
    ids = torch.full((latents.shape[0], 1), bos_id, dtype=torch.long)
    best = []
    for _ in range(steps):
        logits = decoder(ids, latents)[:, -1]
        best.append(logits.max(dim=-1).values)
        ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids, torch.stack(best, dim=1)


@torch.no_grad()
def check_optimus(ctx: FixtureContext) -> list[Comparison]:
    """Tokenisation, BERT pooling, encoded latent, greedy/forced logits, seeded sampled text."""
    t = ctx.tensors
    scale = ctx.official.scale_factors["text"]
    encoder, decoder = ctx.model("optimus_encoder"), ctx.model("optimus_decoder")
    bert_tok = optimus_bert_tokenizer(ctx.vocab_dir)
    gpt2_tok = optimus_gpt2_tokenizer(ctx.vocab_dir)
    special = [gpt2_tok.convert_tokens_to_ids(token) for token in ("<BOS>", "<EOS>")]
    official_special = [*ctx.extra("bos_ids"), *ctx.extra("eos_ids")]
    sampled_key = sampled_strings_key(ctx.entry.get("extra", {}))
    seed = ctx.torch_seed()

    encoded = encoder(t["token_ids"])
    latents = t["z_decode_in"] / scale
    steps = ctx.expected_shape("greedy_ids")[1] - 1
    greedy_ids, greedy_max = _greedy(decoder, latents, official_special[0], steps)
    forced = decoder(t["forced_input_ids"], latents[: ctx.expected_shape("forced_logits")[0]])
    out = [
        Comparison("bos/eos ids", torch.tensor(special), torch.tensor(official_special), EXACT),
        Comparison("token_ids", optimus_bert_token_ids(bert_tok, ctx.extra("sentences")),
                   t["token_ids"], EXACT),
        Comparison("bert_pooled", encoded.pooled, t["bert_pooled"], FORWARD_ATOL),
        Comparison("z_encoded", encoded.mean * scale, t["z_encoded"], FORWARD_ATOL),
        Comparison("greedy_ids", greedy_ids, t["greedy_ids"], EXACT),
        Comparison("greedy_step_max_logit", greedy_max, t["greedy_step_max_logit"], FORWARD_ATOL),
        Comparison("forced_logits", forced, t["forced_logits"], FORWARD_ATOL),
    ]
    greedy_texts = [detokenize(gpt2_tok, ids.tolist()) for ids in greedy_ids]
    out += texts_compared("greedy_decoded", greedy_texts, ctx.extra("greedy_decoded"))
    torch.manual_seed(seed)
    texts = decode_text_latents(decoder, gpt2_tok, latents)
    out += texts_compared(sampled_key, texts, ctx.extra(sampled_key))
    out += texts_compared(
        "model_module_text_postprocess",
        [postprocess_text(text) for text in texts],
        ctx.extra("model_module_text_postprocess"),
    )
    return out


CHECKS = {"optimus": check_optimus}
