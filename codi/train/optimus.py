"""Stage 1: the Optimus text VAE (BERT encoder → latent → GPT-2 decoder) on world captions.

Both halves see text exactly as the pipeline handles it: the encoder the lower-cased BERT ids of
`codi.store.tokenizers.optimus_bert_token_ids`, the decoder "<BOS> caption <EOS>" in the GPT-2
tokenizer with the added specials, so `codi.models.optimus_decoding.decode_text_latents` turns a
latent back into the caption. Loss: token cross-entropy of the decoder (summed over a caption,
decoder input with word dropout) given the *detached* posterior mean, plus cross-entropy of a
training-only linear head that reads each object's colour, shape, position and motion from that
mean. So the encoder is shaped only by the attribute head and the decoder only learns to read it:
trained jointly by the caption loss, the latent kept position and motion but never colour or shape
(docs/nano.md, Stage 1). The latent path starts at unit gain (`fresh_optimus`). The text scale
factor is 1 / std of the posterior means of a fixed set of captions.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertTokenizer, GPT2Tokenizer

from codi.models.official_config import OfficialConfig
from codi.models.optimus_decoding import decode_text_latents, postprocess_text
from codi.models.registry import model_component
from codi.nano import world
from codi.store.assets import VOCAB_DIR
from codi.store.tokenizers import (
    optimus_bert_token_ids,
    optimus_bert_tokenizer,
    optimus_gpt2_tokenizer,
)
from codi.train.attributes import (  # noqa: F401  (re-exported: the stage's public names)
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    MAX_OBJECTS,
    attribute_head,
    attribute_labels,
    attribute_loss,
)
from codi.train.loop import TrainSpec, is_done, run_stage
from codi.train.vae import EVAL_SEED, EVAL_SIZE, save_scale_factor

OPTIMUS_STAGE = "optimus"
ENCODER, DECODER = "optimus_encoder", "optimus_decoder"
#: Fraction of decoder input tokens (after <BOS>) replaced by <PAD> during training, so the
#: decoder cannot predict a caption from its own prefix alone and must read the latent.
WORD_DROPOUT = 0.3
#: Weight of the attribute head's cross-entropy (summed over objects and attributes).
ATTRIBUTE_WEIGHT = 1.0
ATTRIBUTE_HEAD = "optimus_attribute_head"
OPTIMUS_DEFAULTS = TrainSpec(name=OPTIMUS_STAGE, steps=1500, batch_size=32, lr=1e-3, warmup=50)


@cache
def tokenizers() -> tuple[BertTokenizer, GPT2Tokenizer]:
    """The Optimus BERT and GPT-2 tokenizers (the embedded vocab files the pipeline uses)."""
    return optimus_bert_tokenizer(VOCAB_DIR), optimus_gpt2_tokenizer(VOCAB_DIR)


@cache
def _decoder_ids(caption: str) -> tuple[int, ...]:
    """<BOS> caption <EOS> in GPT-2 ids; the leading space makes the words survive detokenising."""
    gpt2 = tokenizers()[1]
    body = gpt2.encode(" " + caption, add_special_tokens=False)
    return (gpt2.convert_tokens_to_ids("<BOS>"), *body, gpt2.convert_tokens_to_ids("<EOS>"))


def caption_batch(captions: list[str]) -> dict[str, torch.Tensor]:
    """Encoder ids (B, T) padded with 0, decoder ids (B, L) padded with <PAD>, decoder mask."""
    bert, gpt2 = tokenizers()
    rows = [torch.tensor(_decoder_ids(c)) for c in captions]
    pad = gpt2.convert_tokens_to_ids("<PAD>")
    return {
        "encoder_ids": optimus_bert_token_ids(bert, captions),
        "decoder_ids": nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad),
        "decoder_mask": nn.utils.rnn.pad_sequence(
            [torch.ones(len(r)) for r in rows], batch_first=True),
    }


def world_captions(rng: np.random.Generator, n: int) -> list[str]:
    """Captions of n fresh world scenes."""
    return [world.sample_scene(rng).caption for _ in range(n)]


def _optimus_batch(rng: np.random.Generator, n: int) -> dict[str, torch.Tensor]:
    captions = world_captions(rng, n)
    return caption_batch(captions) | {"attributes": attribute_labels(captions)}


def _drop_words(ids: torch.Tensor) -> torch.Tensor:
    """Decoder inputs with WORD_DROPOUT of the tokens after <BOS> replaced by <PAD>."""
    pad = tokenizers()[1].convert_tokens_to_ids("<PAD>")
    drop = torch.rand(ids.shape, device=ids.device) < WORD_DROPOUT
    drop[:, 0] = False
    return ids.masked_fill(drop, pad)


def optimus_loss(modules, batch: dict[str, torch.Tensor], step: int):
    """Caption cross-entropy on the detached mean + the attribute head's cross-entropy."""
    mean = modules[ENCODER](batch["encoder_ids"]).mean
    ids, mask = batch["decoder_ids"], batch["decoder_mask"][:, 1:]
    logits = modules[DECODER](_drop_words(ids[:, :-1]), mean.detach())
    tokens = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    rec = (tokens * mask).sum(dim=1).mean()
    attributes = attribute_loss(modules[ATTRIBUTE_HEAD](mean), batch["attributes"])
    accuracy = ((logits.argmax(-1) == ids[:, 1:]).float() * mask).sum() / mask.sum()
    return rec + ATTRIBUTE_WEIGHT * attributes, {
        "rec": rec.item(), "attributes": attributes.item(), "token_acc": accuracy.item()}


def _unit_gain_(linear: nn.Linear) -> None:
    nn.init.normal_(linear.weight, std=linear.in_features ** -0.5)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def fresh_optimus(official: OfficialConfig) -> tuple[nn.Module, nn.Module]:
    """An encoder/decoder pair to train, with the latent path at unit gain.

    With BERT/GPT-2's N(0, 0.02) init the path pooler → latent → decoder scales the caption's
    signal by ~0.02 per layer, so the latent reaches the decoder ~10× weaker than a token
    embedding. Unit-gain init of those four layers makes it the decoder's loudest input from the
    start (one of the measures against posterior collapse; the centering penalty is another).
    """
    encoder = model_component(ENCODER).build(official)
    decoder = model_component(DECODER).build(official)
    for layer in (encoder.bert.pooler.dense, encoder.linear,
                  decoder.latent_embedding, decoder.latent_memory):
        _unit_gain_(layer)
    return encoder, decoder


@torch.no_grad()
def encode_captions(encoder: nn.Module, captions: list[str]) -> torch.Tensor:
    """Unscaled text latents (B, latent): the posterior means of the captions."""
    return encoder(caption_batch(captions)["encoder_ids"]).mean


def eval_captions() -> list[str]:
    """The fixed evaluation captions."""
    return world_captions(np.random.default_rng(EVAL_SEED), EVAL_SIZE)


def train_optimus(
    official: OfficialConfig, run_dir: Path, steps: int | None = None, accelerator=None
) -> dict[str, nn.Module]:
    """Train (or load) the Optimus VAE; writes the text scale factor to scale_factor.json."""
    encoder, decoder = fresh_optimus(official)
    spec = TrainSpec(**vars(OPTIMUS_DEFAULTS))
    if steps is not None:
        spec.steps, spec.warmup = steps, min(spec.warmup, steps // 10)
    modules = {ENCODER: encoder, DECODER: decoder}
    if not is_done(run_dir, OPTIMUS_STAGE):  # the head is for training only: never loaded
        modules[ATTRIBUTE_HEAD] = attribute_head(decoder.config.latent_size)
    run_stage(spec, modules, optimus_loss, _optimus_batch, run_dir, accelerator)
    encoder.eval()
    decoder.eval()
    factor = float(1.0 / encode_captions(encoder, eval_captions()).std())
    save_scale_factor(run_dir, OPTIMUS_STAGE, factor, accelerator)
    return {ENCODER: encoder, DECODER: decoder}


def _decode_captions(encoder: nn.Module, decoder: nn.Module, captions: list[str]) -> list[str]:
    """Greedy pipeline decoding of the captions' latents, post-processed as the pipeline does."""
    texts = decode_text_latents(decoder, tokenizers()[1], encode_captions(encoder, captions),
                           greedy=True)
    return [postprocess_text(t) for t in texts]


def caption_exact_match(encoder: nn.Module, decoder: nn.Module, captions: list[str]) -> float:
    """Fraction of captions that greedy pipeline decoding of their latent gives back exactly."""
    return _exact_match(_decode_captions(encoder, decoder, captions), captions)


def _exact_match(decoded: list[str], captions: list[str]) -> float:
    return float(np.mean([d == c for d, c in zip(decoded, captions, strict=True)]))


def first_object_accuracy(decoded: list[str], captions: list[str]) -> dict[str, float]:
    """Per attribute, the fraction of captions whose first object the decoding gets right.

    An unparsable decoding counts as wrong in every attribute.
    """
    hits: dict[str, list[bool]] = {name: [] for name in ATTRIBUTES}
    for text, caption in zip(decoded, captions, strict=True):
        found, expected = world.parse_caption(text), world.parse_caption(caption)
        for name in ATTRIBUTES:
            hits[name].append(bool(found) and getattr(found[0], name) == getattr(expected[0], name))
    return {name: float(np.mean(values)) for name, values in hits.items()}


def top_variance_share(latents: torch.Tensor, k: int = 3) -> float:
    """Share of the latents' (N, D) variance along their k leading principal directions.

    Near 1 means the latent uses only k directions (partial posterior collapse); for isotropic
    latents it is about k / D.
    """
    eigenvalues = torch.linalg.eigvalsh(torch.cov(latents.T.double())).flip(0).clamp(min=0)
    return float(eigenvalues[:k].sum() / eigenvalues.sum())


def caption_quality(
    encoder: nn.Module, decoder: nn.Module, captions: list[str]
) -> dict[str, float]:
    """Exact match, first-object attribute accuracy of the decoded captions, and the share of the
    latent variance in its three leading directions."""
    decoded = _decode_captions(encoder, decoder, captions)
    return {"exact_match": _exact_match(decoded, captions),
            **first_object_accuracy(decoded, captions),
            "top3_variance_share": top_variance_share(encode_captions(encoder, captions))}
