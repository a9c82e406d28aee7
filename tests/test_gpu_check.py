"""benchmarks/gpu_check.py in its CPU form (`--device cpu --small`), so the GPU acceptance check
cannot rot: it runs every config a CPU can, probes finiteness, honours its budget, and fails when
an output is not finite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402


def test_small_cpu_form_runs_every_cpu_config_and_the_studio(tmp_path):
    out = tmp_path / "check.json"
    assert gpu_check.main(["--device", "cpu", "--small", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["mode"], r["config"]): r for r in report["rows"]}
    for config in gpu_check.SMALL_CONFIGS:
        for mode in gpu_check.SMALL_MODES:
            row = rows[(mode, config)]
            assert row["finite"] is True and row["step_s"] > 0 and row["peak_gb"] > 0, row
    assert rows[("studio /generate", "app.py --device cpu")]["finite"] is True
    assert report["failed"] == 0


def test_rows_past_the_budget_are_marked_not_run_and_do_not_fail(tmp_path):
    out = tmp_path / "check.json"
    code = gpu_check.main(["--device", "cpu", "--small", "--no-studio", "--budget-s", "0",
                           "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert code == 0 and rows and all(r["skipped"] == "not run (budget)" for r in rows)


def test_bitsandbytes_and_xformers_rows_say_why_they_are_skipped_on_a_cpu():
    assert "CUDA" in gpu_check.unavailable("int8", "cpu")
    assert "CUDA" in gpu_check.unavailable("nf4", "cpu")
    assert gpu_check.unavailable("ours", "cpu") is None


def test_a_non_finite_decode_fails_the_check(monkeypatch, tmp_path):
    from codi.pipeline import decoding

    real = decoding.decode_image_latents
    monkeypatch.setattr(decoding, "decode_image_latents",
                        lambda vae, z: real(vae, z) * torch.tensor(float("nan")))
    args = gpu_check.parse_args(["--device", "cpu", "--small"])
    row = gpu_check.run_config("ours", ["t2i"], args, deadline=float("inf"))[0]
    assert row["finite"] is False and "decode_image_latents output" in row["not_finite"]
    assert gpu_check.failed(row)
    assert "NO: decode_image_latents output" in gpu_check.table([row])


@pytest.mark.parametrize("config", ["ours", "offload"])
def test_runtime_per_config_on_a_cpu(config):
    runtime = gpu_check.runtime_for(config, "cpu")
    assert runtime.offload == ("model" if config == "offload" else "none")
    assert runtime.quantize == "none" and runtime.attention == "sdpa"
