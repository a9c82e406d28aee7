"""gradio_client helpers shared by the Evaluate-tab tests."""

from __future__ import annotations

import time

import pytest


def wait_for_generation(client, session_id: str, seconds: float = 120) -> dict:
    """Poll /eval_progress until the session's generation stops; its last state."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = client.predict(session_id, api_name="/eval_progress")
        if not state["running"]:
            return state
        time.sleep(0.3)
    pytest.fail("generation did not finish")
