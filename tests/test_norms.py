"""The temporal layers' gain-only norms (codi.models.norms): the official maths, any axis, dtype."""

import json
import sys
from pathlib import Path

import pytest
import torch

from codi.models import temporal
from codi.models.norms import normalise, normalise_last, official_eps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import temporal_ab  # noqa: E402


def reference(x: torch.Tensor, dim: int, eps: float) -> torch.Tensor:
    """The official formula, in float64: variance clamped at eps, not eps added."""
    x = x.double()
    var, mean = torch.var_mean(x, dim=dim, unbiased=False, keepdim=True)
    return (x - mean) * var.clamp(min=eps).rsqrt()


@pytest.mark.parametrize("shape, dim", [((64, 8, 40), 1), ((2, 24, 8, 4, 4), 1), ((3, 5, 7), 2)])
def test_normalise_matches_the_official_formula_in_float32(shape, dim):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3 + 1
    torch.testing.assert_close(normalise(x, dim).double(), reference(x, dim, 1e-5),
                               rtol=1e-5, atol=1e-5)


def test_float64_is_the_float32_norm_with_less_rounding():
    # Variances of about 4e-4 on 8 frames: between float32's eps 1e-5 and half precision's 1e-3,
    # so the parity runner's float64 reference would differ from float32 by far more than
    # rounding if it took the half-precision eps.
    x = torch.randn(16, 8, 32, generator=torch.Generator().manual_seed(1)) * 0.02
    assert official_eps(x.double()) == official_eps(x) == 1e-5
    torch.testing.assert_close(normalise(x.double(), 1), normalise(x, 1).double(),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(normalise_last(x.double()), normalise_last(x).double(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_uses_the_official_larger_eps_and_keeps_its_dtype(dtype):
    x = (torch.randn(16, 8, 32, generator=torch.Generator().manual_seed(1)) * 0.02).to(dtype)
    got = normalise(x, 1)
    assert got.dtype == dtype
    assert official_eps(x) == 1e-3
    # Variances of about 4e-4 sit under eps 1e-3, so the clamp decides the scale.
    torch.testing.assert_close(got.double(), reference(x, 1, 1e-3), rtol=0.02, atol=0.02)
    assert got.float().std() < 0.8  # not the unit std of an unclamped norm


def test_constant_input_gives_zeros_not_nan_and_eps_can_be_given():
    x = torch.full((4, 8, 6), 2.5)
    assert torch.equal(normalise(x, 1), torch.zeros_like(x))
    y = torch.randn(4, 8, 6, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    torch.testing.assert_close(normalise(y, 1, eps=1e-5).double(), reference(y, 1, 1e-5),
                               rtol=0.02, atol=0.02)


@pytest.mark.parametrize("scale", [3.0, 1e-3])  # 1e-3: variances under eps, the clamp decides
def test_fused_last_axis_norm_matches_the_official_formula_with_its_gain(scale):
    x = (torch.randn(64, 8, 853, generator=torch.Generator().manual_seed(3)) + 0.5) * scale
    gain = torch.randn(853, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(normalise_last(x, gain).double(),
                               reference(x, -1, 1e-5) * gain.double(), rtol=1e-5, atol=1e-5)


def test_fused_last_axis_norm_of_a_constant_row_is_zero_and_keeps_half_precision():
    assert torch.equal(normalise_last(torch.full((2, 8, 6), 2.5)), torch.zeros(2, 8, 6))
    x = (torch.randn(16, 8, 32, generator=torch.Generator().manual_seed(5)) * 0.02)
    got = normalise_last(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), reference(x.to(torch.bfloat16), -1, 1e-3),
                               rtol=0.02, atol=0.02)


def test_the_ab_benchmark_compares_both_ways_and_restores_todays(tmp_path):
    today = temporal.TemporalFeedForward.forward
    out = tmp_path / "ab.json"
    assert temporal_ab.main(["--skip-unet", "--rounds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["temporal_layer_320_s"]) == {"before", "today"}
    assert report["temporal_layer_output_relative_difference"] < 1e-5  # the same layer
    assert temporal.normalise is normalise
    assert temporal.TemporalFeedForward.forward is today
