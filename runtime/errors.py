"""Project exception types: each carries a one-line message that names the file or source."""

from __future__ import annotations


class RuntimeErrorBase(Exception):
    """Base of the runtime's user-facing errors (the CLI prints the message and exits non-zero)."""


class ModelFormatError(RuntimeErrorBase):
    """A model file is missing, unreadable, or lacks / has a malformed ``edgercnn.config``."""


class BackendError(RuntimeErrorBase):
    """A backend cannot be opened or run (missing package, provider or plugin library)."""


class SourceError(RuntimeErrorBase):
    """An input source cannot be opened or read."""


class SinkError(RuntimeErrorBase):
    """An output cannot be written."""
