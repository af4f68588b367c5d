"""What the op wrappers (``edgercnn.export.ops``) and their ONNX translations both need.

A module of its own so that neither imports the other: the package loads the translations lazily
(they pull in onnxscript), and the translations raise the package's argument error.
"""

from __future__ import annotations

from typing import Literal

from edgercnn.export.deploy.errors import ExportError

Flavour = Literal["portable", "tensorrt"]  # the contract's Flavour values, for type checkers


class OpArgumentError(ExportError):
    """Arguments the op contract (plugins/README.md) does not allow; raised at graph-build time,
    before tracing, so the message names the argument instead of a deep export traceback."""
