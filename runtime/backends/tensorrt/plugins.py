"""Loading TensorRT and the user's plugin library: which file, from where, and checking it registered.

The library's path comes from the user (an argument or ``$EDGERCNN_PLUGIN_LIB``) or from the
sidecar that ``edgercnn build`` wrote beside the engine on this device; the model file itself
never decides what code is loaded. Shared by the backend and the engine builder.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...contract import BATCHED_NMS, PLUGIN_NAMESPACE, PLUGIN_VERSION
from ...errors import BackendError
from .sidecar import Sidecar

if TYPE_CHECKING:
    import tensorrt as trt

PLUGIN_ENV = "EDGERCNN_PLUGIN_LIB"
PLUGIN_PROBE = (BATCHED_NMS.name, PLUGIN_VERSION)  # a creator the library must register


def resolve_plugin_library(explicit: str | Path | None, sidecar: Sidecar, engine_path: Path) -> Path | None:
    """Which plugin library to load: the caller's, $EDGERCNN_PLUGIN_LIB, or the one named in the
    sidecar (as recorded, or beside the engine). None when the engine needs none."""
    candidates: list[Path] = []
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BackendError(f"{path}: plugin library not found")
        return path
    if os.environ.get(PLUGIN_ENV):
        path = Path(os.environ[PLUGIN_ENV])
        if not path.is_file():
            raise BackendError(f"{path}: plugin library named by ${PLUGIN_ENV} not found")
        return path
    recorded = sidecar.engine.plugin_library
    if recorded is None:
        return None
    candidates = [Path(recorded), engine_path.parent / Path(recorded).name]
    return next((p for p in candidates if p.is_file()), None)


def import_tensorrt() -> Any:
    """The real ``tensorrt`` module (a stubs-only install has no ``Builder``: treated as absent)."""
    try:
        module = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BackendError(f"TensorRT is not installed ({exc}); JetPack 6 ships it (docs/jetson.md)") from exc
    if not hasattr(module, "Runtime"):
        raise BackendError("the installed 'tensorrt' package is only type stubs, not TensorRT")
    return module


def load_plugin_library(logger: trt.ILogger, path: Path | None) -> None:
    """Register TensorRT's own plugins and, if given, edgercnn's library.

    The library registers its creators when loaded globally; a TensorRT 10+ library that only
    exports ``getCreators`` is loaded through the registry instead (both are tried, once each).
    """
    if path is not None:
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise BackendError(f"{path}: cannot load the plugin library ({exc})") from exc
    import tensorrt as trt

    trt.init_libnvinfer_plugins(logger, "")
    if path is None:
        return
    registry: trt.IPluginRegistry = trt.get_plugin_registry()
    if registry.get_creator(PLUGIN_PROBE[0], PLUGIN_PROBE[1], PLUGIN_NAMESPACE) is None:
        registry.load_library(str(path))
    if registry.get_creator(PLUGIN_PROBE[0], PLUGIN_PROBE[1], PLUGIN_NAMESPACE) is None:
        raise BackendError(
            f"{path}: loaded, but it registers no {PLUGIN_PROBE[0]} v{PLUGIN_PROBE[1]} plugin in namespace "
            f"{PLUGIN_NAMESPACE!r}; rebuild it against this TensorRT (plugins/README.md)"
        )
