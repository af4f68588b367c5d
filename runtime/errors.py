"""The project's one error root and its families: each carries a one-line message naming the input.

Every user-facing error in the package derives from :class:`EdgercnnError`, which also carries the
process exit code; the command dispatcher (``runtime/commands``) catches it once, prints
``<prog>: error: <message>`` and exits with that code. Lives in the runtime so that the exporter
and the device share it while ``runtime/`` still runs alone.
"""

from __future__ import annotations


class EdgercnnError(Exception):
    """Bad input or an unusable environment, said in one line; never a traceback for the user."""

    exit_code: int = 2

    def __init__(self, message: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ModelFormatError(EdgercnnError):
    """A model file is missing, unreadable, or lacks / has a malformed ``edgercnn.config``."""


class BackendError(EdgercnnError):
    """A backend cannot be opened or run (missing package, provider or plugin library)."""


class SourceError(EdgercnnError):
    """An input source cannot be opened or read."""


class SinkError(EdgercnnError):
    """An output cannot be written."""


class UsageError(EdgercnnError):
    """Options that cannot work together, or a value outside what a command accepts."""


class Interrupted(EdgercnnError):
    """Ctrl-C or SIGTERM ended a command before it finished; what it says was (not) written."""

    exit_code = 130
