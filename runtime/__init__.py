"""Device side: torch-free pre/post-processing and inference backends.

This package never imports torch or ``export``: it can be copied to a camera on its own.
``from runtime import Detector`` works; the names below are imported on first use so that
``import runtime`` itself stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Detector": ".detector",
    "Detections": ".detections",
    "ModelConfig": ".config",
    "prepare_batch": ".preprocess",
    "open_backend": ".backends.base",
    "open_sources": ".sources",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
