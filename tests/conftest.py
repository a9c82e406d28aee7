"""Shared test fixtures. Tests that need ../shared/parity skip with a clear reason without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CODI_SHARED_DIR", REPO_ROOT.parent / "shared"))
PARITY_DIR = SHARED / "parity"
FIXTURE_DIR = PARITY_DIR / "fixtures"
VOCAB_DIR = PARITY_DIR / "vocab"
MANIFEST_DIR = PARITY_DIR / "manifests"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs the official parity data at {path} (../shared/parity is absent)")
    return path


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return _require(FIXTURE_DIR / "index.json").parent


@pytest.fixture(scope="session")
def vocab_dir() -> Path:
    return _require(VOCAB_DIR)


@pytest.fixture(scope="session")
def manifest_dir() -> Path:
    return _require(MANIFEST_DIR)


@pytest.fixture(scope="session")
def tiny_official(fixture_dir):
    """The tiny fixture model's OfficialConfig."""
    from codi.parity.fixtures import official_config_of

    return official_config_of(fixture_dir)


@pytest.fixture(scope="session")
def tiny_weights(fixture_dir):
    """The tiny fixture model's official-layout state dict (float32)."""
    from codi.parity.fixtures import load_weights

    return load_weights(fixture_dir)
