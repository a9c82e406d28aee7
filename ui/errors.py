"""The page's one translation of failures into messages: a user's mistake shows its own text, a
cancelled run says so, a bug shows a short notice (its traceback goes to the server log).

Every event handler and API endpoint of the studio and the Evaluate tab is wrapped in
`friendly`, so none of them ever shows a traceback and the server keeps serving.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from codi.errors import CoDiUserError, GenerationCancelled

log = logging.getLogger("codi.studio")


def friendly(fn: Callable) -> Callable:
    """`fn` raising `gr.Error` instead: the message of a `CoDiUserError`, a cancellation
    notice, or (for anything else, a bug) the exception's type and a pointer to the log."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CoDiUserError as error:
            raise gr.Error(str(error), title="Please check the request") from None
        except GenerationCancelled:
            raise gr.Error("Generation cancelled; nothing was saved.", title="Cancelled") from None
        except gr.Error:
            raise
        except Exception as error:  # a bug: say so, keep serving
            log.exception("%s failed", getattr(fn, "__name__", "a request"))
            raise gr.Error(f"CoDi Studio hit an internal error ({type(error).__name__}); the "
                           "server log has the details. Other requests still work.",
                           title="Internal error") from None

    return wrapper
