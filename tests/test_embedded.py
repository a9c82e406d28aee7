"""The tiny random model in assets/ and the tokenizers saved inside model folders."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from codi.convert.registry import all_specs
from codi.convert.writer import file_sha256
from codi.errors import CoDiUserError
from codi.store.assets import ASSETS_DIR, NANO_DIR, TINY_RANDOM_DIR, VOCAB_DIR
from codi.store.tiny_random import build
from codi.store.tokenizers import TOKENIZER_FILES, load_tokenizers, save_tokenizers
from codi.store.weights import available_components, load_component

#: Everything in assets/ but CoDi-Nano (the tiny random model, its vocab, the studio examples)
#: stays small enough for a git checkout and a Space; CoDi-Nano has its own budget (issue: 50 MB).
MAX_ASSETS_BYTES = 20 * 10**6
MAX_NANO_BYTES = 50 * 10**6
SENTENCES = ["A dog runs on the beach.", "Über-café naïve résumé 123!", "x" * 600]


def index() -> dict:
    return json.loads((TINY_RANDOM_DIR / "model_index.json").read_text())


def test_shipped_folder_is_complete_small_and_hashed():
    info = index()
    assert info["kind"] == "tiny-random" and "random-weight" in info["note"]
    names = [spec.name for spec in all_specs()]
    assert available_components(TINY_RANDOM_DIR) == sorted(names)
    for name in names:
        (weights,) = (TINY_RANDOM_DIR / name).glob("*.safetensors")
        assert info["weights_sha256"][name] == file_sha256(weights)
    for folder in TOKENIZER_FILES:
        assert (TINY_RANDOM_DIR / folder).is_dir()
    files = [p for p in ASSETS_DIR.rglob("*") if p.is_file()]
    nano = [p for p in files if NANO_DIR in p.parents]
    total = sum(p.stat().st_size for p in files if p not in nano)
    assert total <= MAX_ASSETS_BYTES, f"assets/ without CoDi-Nano holds {total / 1e6:.1f} MB"
    nano_total = sum(p.stat().st_size for p in nano)
    assert nano_total <= MAX_NANO_BYTES, f"assets/codi-nano holds {nano_total / 1e6:.1f} MB"


def test_every_component_loads_and_no_layer_is_left_constant():
    for spec in all_specs():
        module = load_component(TINY_RANDOM_DIR, spec.name, dtype=torch.float32)
        assert isinstance(module, spec.model_class)
        for key, param in module.named_parameters():
            assert param.dtype == torch.float32
            if param.numel() > 1:  # zero-init outputs and unit gains were re-drawn
                assert not torch.all(param == param.reshape(-1)[0]), f"{spec.name}.{key}"


def test_build_is_deterministic_and_matches_the_shipped_assets(tmp_path):
    folder = build(tmp_path / "tiny")
    rebuilt = json.loads((folder / "model_index.json").read_text())
    assert rebuilt == index()
    for path in (TINY_RANDOM_DIR / "tokenizer_clip").iterdir():
        assert (folder / "tokenizer_clip" / path.name).read_bytes() == path.read_bytes()


def test_saved_tokenizers_match_the_builders(vocab_dir):
    from codi.models.clip import tokenize
    from codi.store.tokenizers import (
        load_clip_tokenizer,
        optimus_bert_token_ids,
        optimus_bert_tokenizer,
        optimus_gpt2_tokenizer,
    )

    saved = load_tokenizers(TINY_RANDOM_DIR)
    clip = tokenize(load_clip_tokenizer(vocab_dir), SENTENCES)
    assert torch.equal(tokenize(saved["clip"], SENTENCES), clip)
    assert torch.equal(
        optimus_bert_token_ids(saved["optimus_bert"], SENTENCES),
        optimus_bert_token_ids(optimus_bert_tokenizer(vocab_dir), SENTENCES),
    )
    gpt2, reference = saved["optimus_gpt2"], optimus_gpt2_tokenizer(vocab_dir)
    specials = [gpt2.convert_tokens_to_ids(t) for t in ("<PAD>", "<BOS>", "<EOS>")]
    assert specials == [50257, 50258, 50259]
    for sentence in SENTENCES:
        assert gpt2.encode(sentence) == reference.encode(sentence)


def test_tokenizers_from_plain_hub_named_files(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    renames = {
        "clip_vocab.json.gz": "vocab.json", "clip_merges.txt.gz": "merges.txt",
        "optimus_bert-base-cased-vocab.txt.gz": "bert-base-cased-vocab.txt",
        "optimus_gpt2-vocab.json.gz": "gpt2-vocab.json",
        "optimus_gpt2-merges.txt.gz": "gpt2-merges.txt",
    }
    for gz, name in renames.items():
        (plain / name).write_bytes(gzip.decompress((VOCAB_DIR / gz).read_bytes()))
    files = save_tokenizers(tmp_path / "model", plain)
    assert len(files) == 5
    tokenizers = load_tokenizers(tmp_path / "model")
    assert tokenizers["optimus_bert"].tokenize("Hello") == ["Hello"]  # cased, not lower-cased


def test_tokenizer_errors_say_what_to_do(tmp_path):
    with pytest.raises(CoDiUserError, match="has no vocab.json"):
        save_tokenizers(tmp_path / "model", tmp_path)
    with pytest.raises(CoDiUserError, match="python -m codi.store.tokenizers"):
        load_tokenizers(tmp_path)


def test_offline_hub_tokenizers_explain_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CoDiUserError, match="openai/clip-vit-large-patch14.*--vocab DIR"):
        save_tokenizers(tmp_path / "model")


def test_joint_generation_runs_through_the_pipeline_with_connectors():
    from codi.pipeline.codi_pipeline import CoDiPipeline
    from codi.pipeline.request import ConditionInput, GenerationRequest, GenerationSettings

    pipeline = CoDiPipeline.from_pretrained(TINY_RANDOM_DIR)
    assert pipeline.model_info["kind"] == "tiny-random"
    outputs = ["image", "audio", "text", "video"]
    connectors = pipeline.connectors(outputs)
    assert all(connectors[m] is not None for m in outputs)
    request = GenerationRequest(
        [ConditionInput("text", "a dog barking")], outputs,
        GenerationSettings(steps=1, image_size=64, num_frames=2, seed=7),
    )
    steps = []
    result = pipeline(request, on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 1)]
    assert result.images[0].size == (64, 64)
    assert result.videos[0].shape == (2, 64, 64, 3) and result.videos[0].dtype == np.uint8
    assert np.isfinite(result.audios[0]).all() and result.audios[0].size > 0
    assert result.texts[0].strip()  # the random decoder still writes words
