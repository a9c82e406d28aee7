"""The one exception type for problems a user can cause (bad file, wrong format, too long, ...)."""

from __future__ import annotations


class CoDiUserError(ValueError):
    """An error caused by user input. Its message is written for a person and says what to do.

    The UI and CLI show `str(err)` as is; anything else that escapes is a bug in CoDi Studio.
    """


class GenerationCancelled(Exception):
    """The person cancelled a generation; raised between denoising steps."""
