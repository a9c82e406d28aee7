"""`ui.errors.friendly`, the page's one failure → message translation."""

from __future__ import annotations

import inspect
import logging

import gradio as gr
import pytest

from codi.errors import CoDiUserError, GenerationCancelled
from ui.errors import friendly


def fail_with(error: Exception):
    def handler(session_id: str, rater: str = "") -> str:
        """Documented for the API."""
        raise error

    return friendly(handler)


def test_user_errors_show_their_own_message():
    with pytest.raises(gr.Error, match="Choose a session first") as caught:
        fail_with(CoDiUserError("Choose a session first."))("x")
    assert caught.value.title == "Please check the request"


def test_a_cancelled_generation_says_so():
    with pytest.raises(gr.Error, match="cancelled; nothing was saved") as caught:
        fail_with(GenerationCancelled())("x")
    assert caught.value.title == "Cancelled"


def test_a_bug_is_logged_and_shown_as_a_short_notice(caplog):
    with caplog.at_level(logging.ERROR, logger="codi.studio"):
        with pytest.raises(gr.Error, match=r"internal error \(KeyError\)") as caught:
            fail_with(KeyError("secret detail"))("x")
    assert "secret detail" not in str(caught.value)
    assert caught.value.title == "Internal error"
    assert "handler failed" in caplog.text and "KeyError" in caplog.text


def test_gradio_errors_and_results_pass_through():
    with pytest.raises(gr.Error, match="as raised"):
        fail_with(gr.Error("as raised"))("x")
    assert friendly(lambda a, b=2: a + b)(1, b=3) == 4


def test_the_signature_and_docstring_gradio_documents_are_kept():
    wrapped = fail_with(ValueError())
    assert list(inspect.signature(wrapped).parameters) == ["session_id", "rater"]
    assert wrapped.__doc__ == "Documented for the API."
