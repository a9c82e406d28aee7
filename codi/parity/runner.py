"""Runs every fixture of a folder against our converted models and reports one line each."""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from codi.convert.core import ConversionReport, convert
from codi.models.attention import set_attention_backend
from codi.parity.checks import CHECKS
from codi.parity.fixtures import (
    Comparison,
    FixtureContext,
    MissingParameter,
    SkipFixture,
    load_fixture_tensors,
    load_weights,
    official_config_of,
    read_index,
)
from codi.store.weights import load_component


@dataclass
class FixtureResult:
    """The outcome of one fixture."""

    name: str
    status: str  # "pass", "fail" or "skipped"
    max_abs_error: float | None = None
    atol: float | None = None
    detail: str = ""

    def line(self) -> str:
        if self.max_abs_error is None:
            numbers = ""
        else:
            numbers = f"max_abs_err={self.max_abs_error:.3g} tol={self.atol:g} "
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.name:<32s} {numbers}{self.status.upper()}{detail}"


def judge(name: str, comparisons: list[Comparison]) -> FixtureResult:
    """Pass when every comparison is within its tolerance; report the worst one."""
    if not comparisons:
        return FixtureResult(name, "fail", detail="the check compared nothing")
    errors = [(c, c.max_abs_error()) for c in comparisons]
    failing = [(c, e) for c, e in errors if not e <= c.atol]
    worst, error = max(failing or errors, key=lambda ce: ce[1] / max(ce[0].atol, 1e-12))
    if failing:
        names = ", ".join(c.name for c, _ in failing[:4])
        return FixtureResult(name, "fail", error, worst.atol, f"over tolerance: {names}")
    return FixtureResult(name, "pass", error, worst.atol, f"{len(comparisons)} tensors")


class ModelCache:
    """Our components converted from the fixture weights, opened once with from_pretrained.

    Attention runs as the official code computes it (classic, not fused SDPA): on some fixture
    inputs the UNets amplify last-bit rounding differences (e.g. GroupNorm over two values at a 1×1
    bottleneck), and the classic path rounds like the reference does.
    """

    def __init__(self, folder: Path, report: ConversionReport) -> None:
        self.folder = folder
        self.report = report
        self._models: dict[str, torch.nn.Module] = {}

    def __call__(self, name: str) -> torch.nn.Module:
        if name not in self._models:
            if not (self.folder / name / "config.json").exists():
                problems = [e for e in self.report.errors if e.startswith(f"{name}:")]
                raise RuntimeError(
                    f"component {name} was not converted: " + ("; ".join(problems[:3]) or "absent")
                )
            model = load_component(self.folder, name, torch.float32)
            set_attention_backend(model, "classic")  # the official attention's rounding
            self._models[name] = model
        return self._models[name]


def run_fixture(name: str, context: FixtureContext, check: Callable | None) -> FixtureResult:
    """One fixture: skipped without a check, failed on any exception."""
    if check is None:
        return FixtureResult(name, "skipped", detail="not covered yet (no check for this fixture)")
    try:
        with torch.no_grad():
            return judge(name, check(context))
    except SkipFixture as reason:
        return FixtureResult(name, "skipped", detail=str(reason))
    except MissingParameter as missing:
        return FixtureResult(name, "fail", detail=f"index.json lacks {missing.key}")
    except Exception as error:  # a broken fixture or model must fail its line, not the run
        where = traceback.extract_tb(error.__traceback__)[-1]
        detail = f"{type(error).__name__}: {error} [{Path(where.filename).name}:{where.lineno}]"
        return FixtureResult(name, "fail", detail=detail.splitlines()[0][:300])


def run_parity(
    fixture_dir: Path,
    vocab_dir: Path | None = None,
    only: list[str] | None = None,
    on_result: Callable[[FixtureResult], None] | None = None,
) -> list[FixtureResult]:
    """Convert the folder's official weights with our converter, then check every fixture."""
    fixture_dir = Path(fixture_dir)
    vocab_dir = Path(vocab_dir) if vocab_dir else fixture_dir.parent / "vocab"
    index = read_index(fixture_dir)
    official = official_config_of(fixture_dir)
    names = [n for n in index if not n.startswith("_") and (not only or n in only)]
    results = []
    with tempfile.TemporaryDirectory(prefix="codi-parity-") as tmp:
        report = convert([("fixture weights", load_weights(fixture_dir))], official, Path(tmp))
        models = ModelCache(Path(tmp), report)
        for name in names:
            entry = index[name]
            try:
                tensors = load_fixture_tensors(fixture_dir, entry)
            except Exception as error:
                result = FixtureResult(name, "fail", detail=f"cannot load fixture: {error}")
            else:
                context = FixtureContext(
                    name, tensors, entry, official, vocab_dir, models, fixture_dir
                )
                result = run_fixture(name, context, CHECKS.get(name))
            results.append(result)
            if on_result:
                on_result(result)
    return results


def summary(results: list[FixtureResult]) -> str:
    """`N passed, M failed, K skipped`."""
    count = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skipped")}
    return f"{count['pass']} passed, {count['fail']} failed, {count['skipped']} skipped"
