"""The converter's mechanics on a small synthetic official-layout model written to temp files."""

from __future__ import annotations

import gzip
import json
import pickle

import pytest
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from codi.convert import __main__ as cli
from codi.convert.core import convert
from codi.convert.manifest import manifest_sources
from codi.convert.sources import CheckpointError, iter_sources, open_state_dict, resolve_sources
from codi.convert.spec import ComponentSpec, rename_map
from codi.models.official_config import OfficialConfig


class ToyNet(ModelMixin, ConfigMixin):
    """A two-layer network standing in for a CoDi component."""

    @register_to_config
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(width, width)
        self.out = torch.nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.linear(x))


TOY = ComponentSpec(
    name="toy",
    prefixes=("toy.",),
    model_class=ToyNet,
    build=lambda official: ToyNet(width=4),
    map_tensor=rename_map([(r"proj\.(weight|bias)", r"linear.\1"), (r"out\.weight", "out.weight")]),
    unused=((r"head\..*", "classifier head, unused at inference"),),
    fill_missing=((r"out\.weight", "zeros", "zero-initialised output layer"),),
)
TOY_CONNECTOR = ComponentSpec(
    name="toy_connector",
    prefixes=("toy.connector.",),
    model_class=ToyNet,
    build=lambda official: ToyNet(width=4),
    map_tensor=rename_map([(r"(linear|out)\.(.*)", r"\1.\2")]),
    optional=True,
)
SPECS = [TOY, TOY_CONNECTOR]


def official_toy_state(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "toy.proj.weight": torch.randn(4, 4, generator=g).to(dtype),
        "toy.proj.bias": torch.randn(4, generator=g).to(dtype),
        "toy.out.weight": torch.randn(4, 4, generator=g).to(dtype),
        "toy.head.weight": torch.randn(2, 4, generator=g).to(dtype),
        "betas": torch.linspace(0, 1, 10),
    }


def run(tmp_path, files: list, dtype=None, specs=SPECS):
    paths = []
    for i, state in enumerate(files):
        path = tmp_path / f"part{i}.pth"
        torch.save(state, path)
        paths.append(path)
    dst = tmp_path / "out"
    return convert(iter_sources(paths), OfficialConfig(), dst, dtype, specs), dst


def test_pth_round_trip_opens_with_from_pretrained(tmp_path):
    state = official_toy_state()
    report, dst = run(tmp_path, [state])
    assert report.ok, report.errors
    model = ToyNet.from_pretrained(dst / "toy")
    assert torch.equal(model.linear.weight, state["toy.proj.weight"])
    assert torch.equal(model.out.weight, state["toy.out.weight"])
    assert report.unused["toy.head.weight"].startswith("classifier head")
    assert "betas" in report.unused
    assert report.absent["toy_connector"]
    index = json.loads((dst / "model_index.json").read_text())
    assert index["toy"] == [ToyNet.__module__, "ToyNet"]
    assert json.loads((dst / "conversion_report.json").read_text())["ok"] is True


def test_fp16_variant_is_read_and_cast(tmp_path):
    state = official_toy_state(torch.float16)
    report, dst = run(tmp_path, [state], dtype=torch.bfloat16)
    assert report.ok
    model = ToyNet.from_pretrained(dst / "toy", torch_dtype=torch.bfloat16)
    assert model.linear.weight.dtype == torch.bfloat16
    assert torch.equal(model.linear.weight, state["toy.proj.weight"].to(torch.bfloat16))


def test_missing_key_is_filled_with_official_init_and_reported(tmp_path):
    state = official_toy_state()
    del state["toy.out.weight"]
    report, dst = run(tmp_path, [state])
    assert report.ok
    assert "out.weight" in report.filled["toy"]
    assert torch.count_nonzero(ToyNet.from_pretrained(dst / "toy").out.weight) == 0


def test_missing_key_without_official_init_fails(tmp_path):
    state = official_toy_state()
    del state["toy.proj.bias"]
    report, dst = run(tmp_path, [state])
    assert not report.ok
    assert any("linear.bias is missing" in e for e in report.errors)
    assert not (dst / "toy").exists()


def test_unexpected_key_is_reported_and_fails(tmp_path):
    state = official_toy_state()
    state["toy.mystery.weight"] = torch.zeros(3)
    report, _ = run(tmp_path, [state])
    assert report.unknown == ["toy.mystery.weight"]
    assert not report.ok


def test_misshaped_key_fails(tmp_path):
    state = official_toy_state()
    state["toy.proj.weight"] = torch.zeros(4, 5)
    report, _ = run(tmp_path, [state])
    assert any("expected [4, 4]" in e for e in report.errors)


def test_keys_split_across_files_are_merged(tmp_path):
    state = official_toy_state()
    first = {k: state[k] for k in ("toy.proj.weight", "toy.proj.bias")}
    second = {"toy.out.weight": state["toy.out.weight"]}
    report, dst = run(tmp_path, [first, second])
    assert report.ok and "toy" not in report.filled
    assert torch.equal(ToyNet.from_pretrained(dst / "toy").out.weight, state["toy.out.weight"])


def test_wrapped_state_dict_and_module_prefix_are_accepted(tmp_path):
    state = {"module." + k: v for k, v in official_toy_state().items()}
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    assert "toy.proj.weight" in open_state_dict(path)


def test_optional_component_is_converted_when_present(tmp_path):
    state = official_toy_state()
    state["toy.connector.linear.weight"] = torch.ones(4, 4)
    state["toy.connector.linear.bias"] = torch.ones(4)
    state["toy.connector.out.weight"] = torch.ones(4, 4)
    report, dst = run(tmp_path, [state])
    assert report.ok and "toy_connector" not in report.absent
    assert torch.equal(ToyNet.from_pretrained(dst / "toy_connector").out.weight, torch.ones(4, 4))


class Payload:
    """Any class that is not a tensor makes a file unsafe to unpickle."""


def test_file_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    with open(path, "wb") as handle:
        pickle.dump({"toy.proj.weight": Payload()}, handle)
    with pytest.raises(CheckpointError, match="cannot be opened safely"):
        open_state_dict(path)


def test_sources_of_a_folder_and_errors(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in resolve_sources(str(tmp_path))] == ["a.pth"]
    with pytest.raises(CheckpointError):
        resolve_sources(str(tmp_path / "nowhere" / "x"))


def write_manifest(path, shape):
    tensors = [
        {"key": "toy.proj.weight", "shape": shape, "dtype": "float32"},
        {"key": "toy.proj.bias", "shape": [4], "dtype": "float32"},
        {"key": "toy.out.weight", "shape": [4, 4], "dtype": "float32"},
    ]
    with gzip.open(path, "wt") as handle:
        json.dump({"state_dict": {"tensors": tensors}}, handle)


def test_manifest_check_maps_shapes_without_weights(tmp_path):
    good, bad = tmp_path / "good.json.gz", tmp_path / "bad.json.gz"
    write_manifest(good, [4, 4])
    write_manifest(bad, [4, 8])
    assert convert(manifest_sources(good), OfficialConfig(), None, specs=SPECS).ok
    assert not convert(manifest_sources(bad), OfficialConfig(), None, specs=SPECS).ok


def test_cli_reports_and_exits(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("codi.convert.core.all_specs", lambda: tuple(SPECS))
    src = tmp_path / "src"
    src.mkdir()
    torch.save(official_toy_state(), src / "weights.pth")
    assert cli.main([str(src), str(tmp_path / "dst"), "--dtype", "fp16"]) == 0
    out = capsys.readouterr().out
    assert "toy: 3 tensors" in out and out.strip().endswith("OK")
    torch.save({**official_toy_state(), "toy.bogus": torch.zeros(1)}, src / "weights.pth")
    assert cli.main([str(src), str(tmp_path / "dst2")]) == 1
    assert "UNMAPPED official keys: 1" in capsys.readouterr().out
    assert cli.main([str(tmp_path / "missing"), str(tmp_path / "dst3")]) == 2


def test_official_layout_files_convert_end_to_end(tiny_weights, fixture_dir, tmp_path, capsys):
    """The tiny official model, split into .pth files the way the release is, in fp16."""
    src = tmp_path / "official"
    src.mkdir()
    groups = {
        "CoDi_video_diffuser_8frames.pth": "model.diffusion_model.unet_image.",
        "CoDi_text_diffuser.pth": "model.diffusion_model.unet_text.",
        "CoDi_audio_diffuser_m.pth": "model.diffusion_model.unet_audio.",
    }
    rest = dict(tiny_weights)
    for name, prefix in groups.items():
        part = {k: rest.pop(k).half() for k in list(rest) if k.startswith(prefix)}
        torch.save(part, src / name)
    torch.save({"module." + k: v.half() if v.is_floating_point() else v for k, v in rest.items()},
               src / "CoDi_encoders.pth")
    dst = tmp_path / "converted"
    config = str(fixture_dir / "index.json")
    assert cli.main([str(src), str(dst), "--dtype", "fp32", "--config", config]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    index = json.loads((dst / "model_index.json").read_text())
    assert set(index["weights_sha256"]) >= {"unet_image", "unet_text", "clip_vision", "clap"}

    from codi.store.weights import load_component

    unet = load_component(dst, "unet_audio")
    official = tiny_weights["model.diffusion_model.unet_audio.out.2.weight"]
    assert unet.conv_out.weight.dtype == torch.float32
    assert torch.equal(unet.conv_out.weight, official.half().float())
