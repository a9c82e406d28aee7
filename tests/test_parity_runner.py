"""The parity runner: every covered fixture passes, and it catches what it must catch."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from codi.parity import __main__ as cli
from codi.parity.runner import run_parity, summary

#: Fixtures that wait for the pipeline issue (whole model_module.inference runs).
PIPELINE_FIXTURES = {
    "pipeline_text_to_image",
    "pipeline_multicond_to_image",
    "pipeline_image_to_text",
    "pipeline_text_to_video_audio",
}


@pytest.fixture(scope="module")
def all_results(fixture_dir):
    return run_parity(fixture_dir)


def test_every_component_fixture_passes(all_results):
    failed = [r.line() for r in all_results if r.status == "fail"]
    assert not failed, "\n".join(failed)
    skipped = {r.name for r in all_results if r.status == "skipped"}
    assert skipped <= PIPELINE_FIXTURES, f"uncovered fixtures: {skipped - PIPELINE_FIXTURES}"


def copy_fixture_folder(fixture_dir, tmp_path, names):
    """A new folder in the same format holding only some fixtures."""
    index = json.loads((fixture_dir / "index.json").read_text())
    subset = {name: index[name] for name in names} | {"_meta": index["_meta"]}
    (tmp_path / "index.json").write_text(json.dumps(subset))
    shutil.copy(fixture_dir / index["_meta"]["weights_file"], tmp_path)
    for name in names:
        shutil.copy(fixture_dir / index[name]["file"], tmp_path)
    return tmp_path


def test_runner_detects_a_wrong_number_in_any_folder(fixture_dir, tmp_path, capsys):
    folder = copy_fixture_folder(fixture_dir, tmp_path, ["hifigan_vocoder"])
    assert cli.main([str(folder), "--vocab", str(fixture_dir.parent / "vocab")]) == 0
    assert capsys.readouterr().out.strip().endswith("1 passed, 0 failed, 0 skipped")

    path = folder / "hifigan_vocoder.safetensors"
    tensors = load_file(str(path))
    tensors["waveform"] = tensors["waveform"] + 1e-3
    save_file(tensors, str(path))
    results = run_parity(folder)
    assert [r.status for r in results] == ["fail"]
    assert results[0].max_abs_error == pytest.approx(1e-3, rel=1e-2)
    assert cli.main([str(folder)]) == 1


def test_unloadable_fixture_fails_and_unknown_fixture_is_skipped(fixture_dir, tmp_path):
    folder = copy_fixture_folder(fixture_dir, tmp_path, ["hifigan_vocoder"])
    index = json.loads((folder / "index.json").read_text())
    index["a_future_fixture"] = {"file": "hifigan_vocoder.safetensors"}
    index["broken"] = {"file": "does_not_exist.safetensors"}
    (folder / "index.json").write_text(json.dumps(index))
    results = {r.name: r for r in run_parity(folder)}
    assert results["a_future_fixture"].status == "skipped"
    assert results["broken"].status == "fail"
    assert summary(list(results.values())) == "1 passed, 1 failed, 1 skipped"


def test_folder_without_index_is_refused(tmp_path):
    assert cli.main([str(tmp_path)]) == 2
