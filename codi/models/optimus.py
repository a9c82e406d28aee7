"""The Optimus text VAE of CoDi: a BERT encoder to (mu, logvar) and a GPT-2 decoder fed a latent.

Both are transformers models (`BertModel`, `GPT2Model`) plus the latent layers Optimus adds. The
decoder's latent injection is CoDi's only departure from GPT-2: it is done from outside the
unchanged transformers GPT-2 by a one-slot key/value cache and an added input embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel, DynamicCache, GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Model, GPT2PreTrainedModel
from transformers.utils import ModelOutput

_BERT_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
)
_GPT2_KEYS = (
    "vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "layer_norm_epsilon",
)


def optimus_bert_config(official: dict[str, Any], latent_size: int) -> BertConfig:
    """Our encoder config from the official `optimus_cfg.encoder.args.config` (dropouts are off)."""
    sizes = {k: official[k] for k in _BERT_KEYS if k in official}
    return BertConfig(**sizes, latent_size=latent_size)


def optimus_gpt2_config(official: dict[str, Any], latent_size: int) -> GPT2Config:
    """Our decoder config from the official `optimus_cfg.decoder.args.config`."""
    sizes = {k: official[k] for k in _GPT2_KEYS if k in official}
    return GPT2Config(**sizes, latent_size=latent_size)


@dataclass
class OptimusEncoderOutput(ModelOutput):
    """BERT's pooled [CLS] output and the posterior moments of the text latent."""

    pooled: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


class OptimusEncoder(BertPreTrainedModel):
    """Optimus BERT encoder: pooled (tanh) [CLS] output → `linear` (no bias) → (mean, logvar).

    `config` is a `BertConfig` with an extra `latent_size` attribute.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=True)
        self.linear = nn.Linear(config.hidden_size, 2 * config.latent_size, bias=False)
        self.post_init()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> OptimusEncoderOutput:
        """input_ids (B, T) padded with 0; the mask defaults to `ids > 0` as in CoDi."""
        if attention_mask is None:
            attention_mask = (input_ids > 0).long()
        pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        mean, logvar = self.linear(pooled).chunk(2, dim=-1)
        return OptimusEncoderOutput(pooled=pooled, mean=mean, logvar=logvar)


class OptimusDecoder(GPT2PreTrainedModel):
    """Optimus GPT-2 decoder conditioned on a latent z (B, latent_size).

    `latent_embedding(z)` (Optimus `linear_emb`) is added to every token embedding, and
    `latent_memory(z)` (Optimus `linear`), split per layer and into heads, is both the key and the
    value of one extra position prepended to every layer's attention (a one-token "past", visible
    to every query), so token positions start at 1. `config` is a `GPT2Config` with `latent_size`.
    """

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        memory_size = config.n_layer * config.n_embd
        self.latent_memory = nn.Linear(config.latent_size, memory_size, bias=False)
        self.latent_embedding = nn.Linear(config.latent_size, config.n_embd, bias=False)
        self.post_init()

    def latent_cache(self, latent: torch.Tensor) -> DynamicCache:
        """Every layer's one-slot key/value cache: chunk i of `latent_memory(z)` as (B, H, 1, D)."""
        cfg = self.config
        memory = self.latent_memory(latent).view(latent.shape[0], cfg.n_layer, cfg.n_head, 1, -1)
        cache = DynamicCache(config=cfg)
        for layer in range(cfg.n_layer):
            slot = memory[:, layer]
            cache.update(slot, slot, layer)
        return cache

    def forward(self, input_ids: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, vocab) for input_ids (B, T) given latent (B, latent_size)."""
        length = input_ids.shape[1]
        latent = latent.to(self.latent_memory.weight.dtype)
        embeds = self.transformer.wte(input_ids) + self.latent_embedding(latent)[:, None]
        positions = torch.arange(1, length + 1, device=input_ids.device)
        positions = positions.expand(input_ids.shape[0], -1)
        hidden = self.transformer(
            inputs_embeds=embeds,
            cache=self.latent_cache(latent),
            position_ids=positions,
            use_cache=False,
        ).last_hidden_state
        return self.lm_head(hidden)
