"""The real-weights path (files → converter → loader → generation) on the tiny fixture model,
and the converter's streaming safetensors writer."""

from __future__ import annotations

import gc
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from codi.convert.writer import file_sha256, save_safetensors
from tests.conftest import REPO_ROOT


def _dry_run_module():
    path = REPO_ROOT / "benchmarks" / "full_scale_dry_run.py"
    spec = importlib.util.spec_from_file_location("full_scale_dry_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_dry_run_end_to_end(fixture_dir, vocab_dir, tmp_path, capsys):
    dry_run = _dry_run_module()
    code = dry_run.main([
        "--small", "--fixtures", str(fixture_dir), "--vocab", str(vocab_dir),
        "--workdir", str(tmp_path), "--steps", "2", "--image-size", "64",
        "--modes", "text_to_image", "text_to_audio",
    ])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, json.dumps(summary, indent=1)[-3000:]
    assert summary["convert"]["exit_code"] == 0
    run = summary["generate"]["text_to_image+text_to_audio"]
    # Components open lazily: a text→image request needs exactly these three.
    assert run["text_to_image"]["components_loaded"] == ["clip_text", "unet_image", "vae_image"]
    assert run["text_to_audio"]["components_loaded"] == ["unet_audio", "vae_audio", "vocoder"]
    for mode in ("text_to_image", "text_to_audio"):
        assert run[mode]["output_finite"]
        assert len(run[mode]["step_s"]) == 1
    assert run["text_to_image"]["output_shape"] == [64, 64, 3]
    # Without --keep, what the run wrote is gone.
    assert not (tmp_path / "converted").exists()
    assert not list((tmp_path / "checkpoints").glob("*.pth"))


def test_written_checkpoint_is_a_plain_state_dict(tmp_path):
    dry_run = _dry_run_module()
    entries = [
        {"key": "a.norm.weight", "shape": [8], "dtype": "float32"},
        {"key": "a.proj.weight", "shape": [16, 8], "dtype": "float32"},
        {"key": "clip.embeddings.position_ids", "shape": [1, 5], "dtype": "int64"},
    ]
    path = tmp_path / "x.pth"
    dry_run.write_checkpoint(path, entries, fp16=True, seed=0)
    state = torch.load(path, weights_only=True)
    assert list(state) == [e["key"] for e in entries]
    assert torch.equal(state["a.norm.weight"], torch.ones(8, dtype=torch.float16))
    assert state["a.proj.weight"].dtype == torch.float16
    assert 0.01 < float(state["a.proj.weight"].float().std()) < 0.03
    assert torch.equal(state["clip.embeddings.position_ids"], torch.arange(5)[None])


def test_streaming_writer_round_trips_and_casts(tmp_path):
    base = torch.randn(6, 4)
    tensors = {
        "w": base,
        "w_view": base[:, 1],  # non-contiguous, shares storage with "w"
        "scalar": torch.tensor(3.5),
        "ids": torch.arange(7),
        "mask": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "m.safetensors"
    digest = save_safetensors(tensors, path, {"format": "pt"}, dtype=torch.float16)
    assert digest == file_sha256(path)
    loaded = load_file(path)
    assert set(loaded) == set(tensors)
    for key, tensor in tensors.items():
        expected = tensor.half() if tensor.is_floating_point() else tensor
        assert loaded[key].dtype == expected.dtype and torch.equal(loaded[key], expected), key
    with safe_open(path, framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_streaming_writer_matches_safetensors_layout(tmp_path, dtype):
    from safetensors.torch import save_file

    tensors = {"b": torch.randn(3, 5), "a": torch.arange(4, dtype=torch.int32)}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    save_safetensors(tensors, ours, {"format": "pt"}, dtype)
    cast = {k: v.to(dtype) if dtype and v.is_floating_point() else v for k, v in tensors.items()}
    save_file(cast, str(theirs), metadata={"format": "pt"})
    assert {k: v.tolist() for k, v in load_file(ours).items()} == {
        k: v.tolist() for k, v in load_file(theirs).items()
    }


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc/self/maps")
@pytest.mark.parametrize("dropped", ["toy.out.weight", "toy.proj.bias"])
def test_converter_unmaps_each_file_once_fed(tmp_path, dropped):
    """A component left incomplete by one file must not keep that whole file memory-mapped."""
    from codi.convert.core import Converter
    from codi.convert.sources import open_state_dict
    from codi.models.official_config import OfficialConfig
    from tests.test_convert import SPECS, ToyNet, official_toy_state

    state = official_toy_state()
    path = tmp_path / "part0.pth"
    torch.save({k: v for k, v in state.items() if k != dropped}, path)
    converter = Converter(OfficialConfig(), tmp_path / "out", None, SPECS)
    mapped = open_state_dict(path)
    assert str(path) in Path("/proc/self/maps").read_text()
    converter.feed(path.name, mapped)
    del mapped
    gc.collect()
    assert str(path) not in Path("/proc/self/maps").read_text()
    second = tmp_path / "part1.pth"
    torch.save({dropped: state[dropped]}, second)
    converter.feed(second.name, open_state_dict(second))
    report = converter.finish()
    assert report.ok and "toy" not in report.filled  # the later file's key replaced the init
    model = ToyNet.from_pretrained(tmp_path / "out" / "toy")
    assert torch.equal(model.out.weight, state["toy.out.weight"])
    assert torch.equal(model.linear.bias, state["toy.proj.bias"])
