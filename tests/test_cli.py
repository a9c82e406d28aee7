"""`python -m codi`: flags → request, outputs and errors (a stub pipeline, then the real one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from codi import cli
from codi.errors import CoDiUserError
from codi.pipeline.request import TextDecoding
from codi.pipeline.result import GenerationResult
from codi.store.model_store import resolve_model

REPO = Path(__file__).resolve().parents[1]


def request_of(*argv: str):
    args = cli.build_parser().parse_args(["generate", *argv])
    return cli.build_request(args)


def test_flags_become_a_request():
    request = request_of(
        "--text", "a cat", "--image", "a.jpg", "--image", "b.png", "--audio", "c.wav",
        "--video", "d.mp4", "--video-soundtrack",
        "--weight", "image=0.5", "--weight", "image:2=0.25",
        "--outputs", "image, audio,text", "--steps", "20", "--guidance", "3", "--negative", "blur",
        "--seed", "7", "--size", "128", "--frames", "4", "--fps", "2", "--samples", "2",
        "--text-mode", "greedy", "--temperature", "0.5", "--max-tokens", "12",
        "--official-preprocessing", "--cross-modal",
    )
    got = [(i.modality, i.value, i.weight, i.use_soundtrack) for i in request.inputs]
    assert got == [
        ("text", "a cat", 1.0, False), ("image", Path("a.jpg"), 0.5, False),
        ("image", Path("b.png"), 0.25, False), ("audio", Path("c.wav"), 1.0, False),
        ("video", Path("d.mp4"), 1.0, True),
    ]
    assert request.outputs == ["image", "audio", "text"]
    s = request.settings
    assert (s.steps, s.guidance_scale, s.negative_text, s.seed) == (20, 3.0, "blur", 7)
    assert (s.image_size, s.num_frames, s.fps, s.num_samples) == (128, 4, 2.0, 2)
    decoding = s.text_decoding
    assert (decoding.mode, decoding.temperature, decoding.max_tokens) == ("greedy", 0.5, 12)
    assert s.official_randomness and s.cross_modal


def test_defaults_are_the_official_settings():
    s = request_of("--text", "x").settings
    assert (s.steps, s.guidance_scale, s.image_size, s.num_frames) == (50, 7.5, 256, 8)
    assert s.seed is None
    assert not s.official_randomness
    assert s.text_decoding == TextDecoding()  # sampling at temperature 1, as the official code


def test_left_out_flags_take_the_model_defaults_and_given_flags_win():
    args = cli.build_parser().parse_args(["generate", "--text", "x", "--steps", "7"])
    model = {"image_size": 64, "num_frames": 8, "fps": 4.0, "steps": 25, "guidance_scale": 3.0,
             "cross_modal": True}
    s = cli.build_request(args, model).settings
    got = (s.steps, s.guidance_scale, s.image_size, s.fps, s.cross_modal)
    assert got == (7, 3.0, 64, 4.0, True)
    assert s.connectors
    args = cli.build_parser().parse_args(
        ["generate", "--text", "x", "--no-cross-modal", "--no-connectors"])
    s = cli.build_request(args, model).settings
    assert not s.cross_modal and not s.connectors


def test_text_decoding_flags_fall_back_to_the_model_folder_defaults():
    model = {"text_decoding": {"mode": "greedy", "max_tokens": 20}}
    args = cli.build_parser().parse_args(["generate", "--text", "x", "--temperature", "0.7"])
    decoding = cli.build_request(args, model).settings.text_decoding
    assert (decoding.mode, decoding.temperature, decoding.max_tokens) == ("greedy", 0.7, 20)
    args = cli.build_parser().parse_args(["generate", "--text", "x", "--text-mode", "sample"])
    assert cli.build_request(args, model).settings.text_decoding.mode == "sample"


@pytest.mark.parametrize("weight, message", [
    ("image", "write KIND=W"), ("smell=1", "not one of"), ("text=abc", "not a number"),
    ("audio=1", "no audio input"), ("text:2=1", "there are 1 text inputs"),
    ("text=-1", "must be ≥ 0"),
])
def test_bad_weights_are_user_errors(weight, message):
    with pytest.raises(CoDiUserError, match=message):
        request_of("--text", "x", "--weight", weight)


def test_bad_request_is_one_error_line_and_status_2(capsys):
    assert cli.main(["generate", "--text", "x", "--outputs", "smell"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: Unknown output 'smell'")
    assert cli.main(["generate", "--text", "x", "--model", "/no/such/model"]) == 2
    assert capsys.readouterr().err.startswith("error: Model folder")


def test_unavailable_cuda_is_a_user_error(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    import torch

    from codi.engine.runtime import RuntimeOptions

    assert RuntimeOptions(device="auto").torch_device() == torch.device("cpu")
    with pytest.raises(CoDiUserError, match="no CUDA GPU"):
        RuntimeOptions(device="cuda").torch_device()
    with pytest.raises(CoDiUserError, match="cuda:N"):
        RuntimeOptions(device="cuda:x")
    assert RuntimeOptions().torch_dtype(torch.device("cuda")) is torch.float16
    assert RuntimeOptions(dtype="bf16").torch_dtype(torch.device("cpu")) is torch.bfloat16


class StubPipeline:
    """Stands in for CoDiPipeline: records the call, reports progress, returns a fixed result."""

    calls: ClassVar[list] = []

    @classmethod
    def from_pretrained(cls, folder, device="cpu", dtype=None):
        cls.calls.append(("from_pretrained", Path(folder), device, dtype))
        return cls()

    def __call__(self, request, on_step=None, cancel=None):
        self.calls.append(("call", request))
        for i in range(1, request.settings.steps + 1):
            on_step(i, request.settings.steps)
        return StubResult(texts=["hello"])


class StubResult(GenerationResult):
    def save(self, out_dir, stem="codi"):
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{stem}_text_0.txt"
        path.write_text(self.texts[0])
        return [path]


def test_generate_prints_paths_and_the_model_note(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("codi.pipeline.factory.CoDiPipeline", StubPipeline)
    monkeypatch.setenv("CODI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CODI_MODEL_DIR", raising=False)
    StubPipeline.calls.clear()
    status = cli.main(["generate", "--text", "hi", "--outputs", "text", "--steps", "3",
                       "--out", str(tmp_path / "out"), "--name", "run", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.splitlines() == [str(tmp_path / "out" / "run_text_0.txt")]
    default = resolve_model("auto")  # CoDi-Nano when assets/codi-nano exists, else tiny random
    assert default.note and f"note: {default.note}" in err and "text: hello" in err
    assert "3/3" in err  # the progress bar reached the end
    (_, folder, device, _), (_, request) = StubPipeline.calls
    assert folder == default.folder and device == "cpu"
    assert request.outputs == ["text"] and request.settings.steps == 3


def test_models_lists_the_resolved_model(capsys):
    assert cli.main(["models", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "kind: tiny-random" in out and "unet_image_connectors" in out


def test_generate_end_to_end_with_the_embedded_model(tmp_path):
    """The real command in a fresh interpreter: the embedded model, two outputs, one step."""
    proc = subprocess.run(
        [sys.executable, "-m", "codi", "generate", "--text", "a red fox", "--outputs",
         "image,text", "--steps", "1", "--size", "64", "--seed", "1", "--model", "tiny",
         "--device", "cpu", "--quiet", "--out", str(tmp_path)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    paths = [Path(line) for line in proc.stdout.splitlines()]
    assert sorted(p.suffix for p in paths) == [".png", ".txt"]
    assert all(p.is_file() and p.parent == tmp_path for p in paths)
    assert "random-weight" in proc.stderr
