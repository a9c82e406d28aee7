"""Shared test fixtures. Tests that need ../shared/parity skip with a clear reason without it."""

from __future__ import annotations

import os
import shutil
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


#: Headless Chromium flags for a machine with no GPU, no network and a small /dev/shm.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def browser(tmp_path):
    """(page, expect) in headless Debian chromium; skips without playwright or chromium."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -r "
                                      "requirements-dev.txt)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; never `playwright install`)")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1320, "height": 1000})
        try:
            yield context.new_page(), sync_api.expect
        finally:
            context.close()
