"""`--check-manifest` passes on every official full-size manifest, and fails on a broken one."""

from __future__ import annotations

import gzip
import json

import pytest

from codi.convert import __main__ as cli


@pytest.mark.parametrize(
    "name",
    [
        "codi_full_state_dict.json.gz",
        "codi_full_manifest_by_file.json.gz",
        "codi_full_param_counts.json",
    ],
)
def test_official_manifest_passes(manifest_dir, name, capsys):
    assert cli.main(["--check-manifest", str(manifest_dir / name)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_misshaped_or_unknown_key_fails(manifest_dir, tmp_path, capsys):
    manifest = json.load(gzip.open(manifest_dir / "codi_full_state_dict.json.gz"))
    tensors = manifest["state_dict"]["tensors"]
    entry = next(e for e in tensors if e["key"].endswith("unet_audio.out.2.weight"))
    entry["shape"] = [entry["shape"][0] + 1, *entry["shape"][1:]]
    tensors.append({"key": "clip.model.mystery.weight", "shape": [3], "dtype": "float32"})
    broken = tmp_path / "broken.json.gz"
    with gzip.open(broken, "wt") as handle:
        json.dump(manifest, handle)
    assert cli.main(["--check-manifest", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "clip.model.mystery.weight" in out and "unet_audio" in out and "FAILED" in out
