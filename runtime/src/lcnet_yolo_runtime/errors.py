"""The one exception type for bad input: the command prints its message in one line and exits with status 2."""

from __future__ import annotations


class InputError(ValueError):
    """A model, image, video or option the runtime cannot use; the message says what and what to do."""
