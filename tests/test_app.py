"""The studio starts in-process and serves its page, with or without a converted model."""

from __future__ import annotations

import json
import urllib.request

from ui.status import model_status_markdown


def test_status_without_model_explains_how_to_convert(tmp_path):
    text = model_status_markdown(tmp_path / "missing")
    assert "No converted CoDi model" in text and "python -m codi.convert" in text


def test_status_lists_components_and_absent_connectors(tmp_path):
    (tmp_path / "unet_image").mkdir()
    (tmp_path / "unet_image" / "config.json").write_text("{}")
    report = {"absent": {"unet_image_connectors": "no weights"}, "filled_with_official_init": {}}
    (tmp_path / "conversion_report.json").write_text(json.dumps(report))
    text = model_status_markdown(tmp_path)
    assert "`unet_image`" in text and "unet_image_connectors` absent" in text


def test_app_serves_its_page(tmp_path):
    from ui.app import build_app

    app = build_app(None)
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True)
    try:
        with urllib.request.urlopen(app.local_url, timeout=30) as response:
            assert response.status == 200
            assert b"CoDi Studio" in response.read()
    finally:
        app.close()
