"""Parity check of the Optimus text VAE (fixture `optimus`, parity README §3.7)."""

from __future__ import annotations

import re

import torch

from codi.models.optimus_decoding import decode_latents, detokenize, postprocess_text
from codi.parity.fixtures import Comparison, FixtureContext
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
    t, extra = ctx.tensors, ctx.entry["extra"]
    scale = ctx.official.scale_factors["text"]
    encoder, decoder = ctx.model("optimus_encoder"), ctx.model("optimus_decoder")
    bert_tok = optimus_bert_tokenizer(ctx.vocab_dir)
    gpt2_tok = optimus_gpt2_tokenizer(ctx.vocab_dir)
    bos_id = gpt2_tok.convert_tokens_to_ids("<BOS>")

    encoded = encoder(t["token_ids"])
    latents = t["z_decode_in"] / scale
    greedy_ids, greedy_max = _greedy(decoder, latents, bos_id, t["greedy_ids"].shape[1] - 1)
    forced = decoder(t["forced_input_ids"], latents[:1])
    out = [
        Comparison("token_ids", optimus_bert_token_ids(bert_tok, extra["sentences"]),
                   t["token_ids"], EXACT),
        Comparison("bert_pooled", encoded.pooled, t["bert_pooled"], FORWARD_ATOL),
        Comparison("z_encoded", encoded.mean * scale, t["z_encoded"], FORWARD_ATOL),
        Comparison("greedy_ids", greedy_ids, t["greedy_ids"], EXACT),
        Comparison("greedy_step_max_logit", greedy_max, t["greedy_step_max_logit"], FORWARD_ATOL),
        Comparison("forced_logits", forced, t["forced_logits"], FORWARD_ATOL),
    ]
    out += [
        _text(f"greedy_decoded[{i}]", detokenize(gpt2_tok, ids.tolist()), s)
        for i, (ids, s) in enumerate(zip(greedy_ids, extra["greedy_decoded"]))
    ]
    for key, official in extra.items():
        seed = re.fullmatch(r"optimus_decode_seed(\d+)", key)
        if seed is None:
            continue
        torch.manual_seed(int(seed.group(1)))
        texts = decode_latents(decoder, gpt2_tok, latents)
        out += [_text(f"{key}[{i}]", ours, s) for i, (ours, s) in enumerate(zip(texts, official))]
        cleaned = extra.get("model_module_text_postprocess", ())
        out += [
            _text(f"model_module_text_postprocess[{i}]", postprocess_text(ours), s)
            for i, (ours, s) in enumerate(zip(texts, cleaned))
        ]
    return out


CHECKS = {"optimus": check_optimus}
