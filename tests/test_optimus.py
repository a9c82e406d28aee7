"""Optimus text VAE: model build/convert, parity with the official fixture, decoding, clean-up."""

from __future__ import annotations

import pytest
import torch

from codi.convert.maps.optimus import SPECS, map_decoder, map_encoder
from codi.convert.spec import UnknownKeyError
from codi.models.official_config import OfficialConfig
from codi.models.optimus_decoding import (
    detokenize,
    filter_logits,
    generate_tokens,
    postprocess_text,
    remove_repeated_ngrams,
)

SPEC = {spec.name: spec for spec in SPECS}
BOS, EOS = 50258, 50259


def _unique_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() yields a tied one once


def test_full_size_parameter_counts_match_the_official_model():
    official = OfficialConfig.full()
    with torch.device("meta"):
        encoder = SPEC["optimus_encoder"].build(official)
        decoder = SPEC["optimus_decoder"].build(official)
    assert _unique_params(encoder) == 109_489_920
    assert _unique_params(decoder) == 132_109_824
    assert decoder.lm_head.weight is decoder.transformer.wte.weight


def test_decoder_map_ties_lm_head_and_rejects_unknown_keys():
    spec = SPEC["optimus_decoder"]
    wte = torch.randn(5, 3)
    mapped = dict(map_decoder("transformer.wte.weight", wte))
    assert torch.equal(mapped["lm_head.weight"], wte) and mapped["lm_head.weight"] is not wte
    assert spec.unused_reason("lm_head.weight")
    assert spec.unused_reason("transformer.h.11.attn.bias")
    assert spec.unused_reason("transformer.h.0.attn.masked_bias")
    assert map_decoder("transformer.linear.weight", wte)[0][0] == "latent_memory.weight"
    with pytest.raises(UnknownKeyError):
        map_decoder("transformer.h.0.attn.q_attn.weight", wte)
    with pytest.raises(UnknownKeyError):
        map_encoder("classifier.weight", wte)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_official, tiny_weights):
    """Our components written by the converter from the tiny official weights (lm_head dropped
    from the input, to show wte alone fills it), then opened with from_pretrained."""
    from codi.convert.core import Converter
    from codi.store.weights import load_component

    folder = tmp_path_factory.mktemp("optimus")
    converter = Converter(tiny_official, folder, specs=SPECS)
    converter.feed("tiny", {k: v for k, v in tiny_weights.items()
                            if k.startswith("optimus.") and k != "optimus.decoder.lm_head.weight"})
    report = converter.finish()
    assert not report.errors and not report.unknown, report.to_json()
    return {name: load_component(folder, name, torch.float32) for name in SPEC}


def test_converted_decoder_keeps_the_tie(converted, tiny_weights):
    decoder = converted["optimus_decoder"]
    assert decoder.lm_head.weight.data_ptr() == decoder.transformer.wte.weight.data_ptr()
    assert torch.equal(decoder.lm_head.weight, tiny_weights["optimus.decoder.lm_head.weight"])


def test_optimus_fixture_parity(converted, fixture_dir, vocab_dir, tiny_official):
    from codi.parity.checks.optimus import check_optimus
    from codi.parity.fixtures import FixtureContext, load_fixture_tensors, read_index

    entry = read_index(fixture_dir)["optimus"]
    ctx = FixtureContext("optimus", load_fixture_tensors(fixture_dir, entry), entry, tiny_official,
                         vocab_dir, converted.__getitem__)
    comparisons = check_optimus(ctx)
    names = {c.name for c in comparisons}
    assert {"forced_logits", "greedy_ids", "z_encoded", "optimus_decode_seed101[1]"} <= names
    failed = {c.name: c.max_abs_error() for c in comparisons if c.max_abs_error() > c.atol}
    assert not failed


def test_latent_slot_is_seen_by_every_position(converted):
    decoder = converted["optimus_decoder"]
    ids = torch.tensor([[BOS, 500, 1000, 20000]])
    latent = torch.randn(1, decoder.config.latent_size)
    with torch.no_grad():
        base = decoder(ids, latent)
        cache = decoder.latent_cache(latent)
        assert cache.get_seq_length() == 1
        # Zeroing only the memory path (embedding path unchanged) must move every position.
        weight = decoder.latent_memory.weight.clone()
        decoder.latent_memory.weight.zero_()
        no_memory = decoder(ids, latent)
        decoder.latent_memory.weight.copy_(weight)
    assert ((base - no_memory).abs().amax(dim=-1) > 1e-6).all()
    # A longer prefix leaves earlier positions unchanged (causal).
    with torch.no_grad():
        assert torch.allclose(decoder(ids[:, :2], latent), base[:, :2], atol=1e-5)


def test_generate_stops_at_max_length_with_forced_eos(converted):
    decoder = converted["optimus_decoder"]
    latent = torch.randn(decoder.config.latent_size)
    greedy = generate_tokens(decoder, latent, BOS, EOS, greedy=True, max_length=6)
    assert greedy[0] == BOS and greedy[-1] == EOS and len(greedy) <= 6
    again = generate_tokens(decoder, latent, BOS, EOS, greedy=True, max_length=6)
    assert torch.equal(greedy, again)
    gen = torch.Generator().manual_seed(3)
    sampled = generate_tokens(
        decoder, latent, BOS, EOS, max_length=5, temperature=0.7, generator=gen
    )
    assert sampled[0] == BOS and sampled[-1] == EOS and len(sampled) <= 5


def test_top_p_one_drops_only_the_float_rounding_tail():
    logits = torch.zeros(50260)
    logits[:3] = 5.0
    kept = filter_logits(logits, top_k=0, top_p=1.0)
    assert torch.isfinite(kept[:3]).all()
    cumsum = torch.cumsum(torch.softmax(torch.sort(logits, descending=True).values, -1), -1)
    assert int(torch.isinf(kept).sum()) == max(int((cumsum > 1.0).sum()) - 1, 0)
    top2 = filter_logits(torch.tensor([1.0, 3.0, 2.0, 0.0]), top_k=2, top_p=0.0)
    assert torch.isinf(top2[[0, 3]]).all() and torch.isfinite(top2[[1, 2]]).all()


def test_tokenizers_and_detokenize(vocab_dir):
    from codi.store.tokenizers import (
        optimus_bert_token_ids,
        optimus_bert_tokenizer,
        optimus_gpt2_tokenizer,
    )

    gpt2 = optimus_gpt2_tokenizer(vocab_dir)
    assert gpt2.convert_tokens_to_ids(["<PAD>", "<BOS>", "<EOS>"]) == [50257, 50258, 50259]
    ids = [BOS] + gpt2.encode("Hello world , it 's fine") + [EOS]
    assert detokenize(gpt2, ids) == " <BOS>Hello world, it's fine <EOS>"
    bert = optimus_bert_tokenizer(vocab_dir)
    batch = optimus_bert_token_ids(bert, ["Hello", "A cat sat."])
    assert batch.shape == (2, 6) and batch[0, 3:].eq(0).all()
    assert batch[0, 0] == bert.cls_token_id and batch[0, 2] == bert.sep_token_id
    assert bert.convert_ids_to_tokens(batch[0, 1:2].tolist()) == ["hello"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a a b c b c d", "a b c d"),
        ("the cat, the cat, sat.", "the cat, sat."),
        ("(hello) (hello) world", "(hello) world"),
        ("wait... wait... now", "wait... now"),
        ("one two three one two three one two three", "one two three"),
        ("keep it simple, please", "keep it simple, please"),
    ],
)
def test_postprocess_removes_repeats(text, expected):
    assert postprocess_text(text) == expected


def test_remove_repeated_ngrams_respects_punctuation():
    assert remove_repeated_ngrams("cat cat.") == "cat."
    assert remove_repeated_ngrams("(a) a b") == "(a) a b"
    assert remove_repeated_ngrams('"yes" "yes" no') == '"yes" no'
