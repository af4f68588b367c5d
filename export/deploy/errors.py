"""The exporter's one exception type: bad user input becomes a sentence, never a traceback."""

from __future__ import annotations

from edgercnn.runtime.errors import EdgercnnError


class ExportError(EdgercnnError):
    """A checkpoint, architecture, input size or option the exporter cannot use; the message says why."""


class UnsupportedModelError(ExportError):
    """A model whose parts the static-shape deploy graph does not know how to re-express."""


class UnsupportedInputSizeError(ExportError):
    """A source size for which no sensible fixed graph input exists."""
