"""Loading TensorRT and the user's plugin library: which file, from where, verified before loading.

A plugin library is native code that runs the moment it is loaded (its static initializers), so
its path comes only from the user: ``--plugin-lib``, ``$EDGERCNN_PLUGIN_LIB``, or the project's own
build folder (``plugins/build/libedgercnn_plugins.so``). The engine's sidecar is data that travels
with the engine and anyone who can edit it can also set its ``plugin_sha256``; it never names the
file to load. Its hash is used the other way round: the chosen library must hash to what the
sidecar recorded, checked on the open file *before* ``dlopen``, so a wrong or swapped library is
refused without running any of its code. Shared by the backend and the engine builder.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...contract import BATCHED_NMS, PLUGIN_NAMESPACE, PLUGIN_VERSION
from ...errors import BackendError
from .sidecar import Sidecar

if TYPE_CHECKING:
    import tensorrt as trt

PLUGIN_ENV = "EDGERCNN_PLUGIN_LIB"
PLUGIN_PROBE = (BATCHED_NMS.name, PLUGIN_VERSION)  # a creator the library must register
PLUGIN_LIB_NAME = "libedgercnn_plugins.so"
# runtime/backends/tensorrt/plugins.py -> the repository root -> plugins/build (CMakeLists.txt's default)
PROJECT_BUILD_DIR = Path(__file__).resolve().parents[3] / "plugins" / "build"

# Libraries already loaded by this process (path -> SHA-256): loading twice would register twice.
_LOADED: dict[str, str] = {}


@dataclass(frozen=True)
class PluginChoice:
    """The plugin library to load and where its path came from (for messages)."""

    path: Path
    origin: str  # "--plugin-lib" | "$EDGERCNN_PLUGIN_LIB" | "the project build folder"


def choose_plugin_library(
    explicit: str | Path | None, project_build_dir: Path | None = None
) -> PluginChoice | None:
    """The user's plugin library: ``--plugin-lib``, then ``$EDGERCNN_PLUGIN_LIB``, then the project's
    build folder; None when none of them gives one. Never looks at the sidecar."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BackendError(f"{path}: plugin library (--plugin-lib) not found")
        return PluginChoice(path, "--plugin-lib")
    if os.environ.get(PLUGIN_ENV):
        path = Path(os.environ[PLUGIN_ENV])
        if not path.is_file():
            raise BackendError(f"{path}: plugin library named by ${PLUGIN_ENV} not found")
        return PluginChoice(path, f"${PLUGIN_ENV}")
    built = (project_build_dir if project_build_dir is not None else PROJECT_BUILD_DIR) / PLUGIN_LIB_NAME
    if built.is_file():
        return PluginChoice(built, "the project build folder")
    return None


def plugin_for_engine(
    explicit: str | Path | None, sidecar: Sidecar, engine_path: Path, project_build_dir: Path | None = None
) -> PluginChoice | None:
    """The library an engine needs, chosen by the user; refused in one line when there is none.

    An engine without plugin layers (``plugin_sha256`` null) loads a library only when the user
    names one. The sidecar's ``plugin_library`` is shown in messages, never opened.
    """
    info = sidecar.engine
    if info.plugin_sha256 is None:
        return (
            choose_plugin_library(explicit, project_build_dir)
            if explicit or os.environ.get(PLUGIN_ENV)
            else None
        )
    choice = choose_plugin_library(explicit, project_build_dir)
    if choice is None:
        recorded = Path(info.plugin_library).name if info.plugin_library else PLUGIN_LIB_NAME
        raise BackendError(
            f"{engine_path}: the engine needs the edgercnn plugin library it was built with ({recorded}); "
            f"plugin libraries load only from --plugin-lib, ${PLUGIN_ENV} or {PROJECT_BUILD_DIR}, never "
            f"from the engine's sidecar: pass --plugin-lib or set {PLUGIN_ENV}"
        )
    return choice


def import_tensorrt() -> Any:
    """The real ``tensorrt`` module (a stubs-only install has no ``Builder``: treated as absent)."""
    try:
        module = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BackendError(
            f"TensorRT is not installed ({exc}); JetPack 6.1/6.2 ship TensorRT 10.3 (JetPack 6.0 ships 8.6, "
            "too old), see docs/jetson.md"
        ) from exc
    if not hasattr(module, "Runtime"):
        raise BackendError("the installed 'tensorrt' package is only type stubs, not TensorRT")
    return module


def open_verified_library(choice: PluginChoice, expected_sha256: str | None) -> tuple[ctypes.CDLL, str]:
    """``dlopen`` the library after hashing the very file that gets loaded; (handle, SHA-256).

    The file is opened once; its bytes are hashed from that descriptor and, where ``/proc`` exists,
    ``dlopen`` maps the same descriptor, so renaming another file into place between the check and
    the load changes nothing. A hash other than ``expected_sha256`` is refused before any load.
    """
    path = choice.path
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BackendError(f"{path}: cannot open the plugin library ({exc.strerror})") from None
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        sha = digest.hexdigest()
        if expected_sha256 is not None and sha != expected_sha256:
            raise BackendError(
                f"{path} (from {choice.origin}): SHA-256 {sha[:12]}... is not the {expected_sha256[:12]}... "
                "the engine was built with; not loaded (pass the library the engine was built with)"
            )
        fd_path = Path(f"/proc/self/fd/{fd}")
        target = str(fd_path) if fd_path.exists() else str(path)
        try:
            handle = ctypes.CDLL(target, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise BackendError(f"{path}: cannot load the plugin library ({exc})") from None
    finally:
        os.close(fd)
    return handle, sha


def load_plugin_library(
    logger: trt.ILogger, choice: PluginChoice | None, expected_sha256: str | None
) -> str | None:
    """Register TensorRT's own plugins and, if given, edgercnn's verified library; its SHA-256.

    A library built with static registration (the default) registers its creators when loaded;
    one built with ``-DEDGERCNN_STATIC_REGISTRATION=OFF`` only exports ``getCreators`` and is
    loaded through ``IPluginRegistry.load_library``. That call is made only when the creators
    are still missing: ``loadLibrary`` fails on creators that are already registered.
    """
    sha = None
    if choice is not None:
        resolved = str(choice.path.resolve())
        if resolved in _LOADED:
            sha = _LOADED[resolved]
            if expected_sha256 is not None and sha != expected_sha256:
                raise BackendError(
                    f"{choice.path}: this process already loaded another build of it (SHA-256 {sha[:12]}...)"
                )
        else:
            _, sha = open_verified_library(choice, expected_sha256)
            _LOADED[resolved] = sha
    import tensorrt as trt

    trt.init_libnvinfer_plugins(logger, "")
    if choice is None:
        return None
    registry: trt.IPluginRegistry = trt.get_plugin_registry()
    if registry.get_creator(PLUGIN_PROBE[0], PLUGIN_PROBE[1], PLUGIN_NAMESPACE) is None:
        registry.load_library(str(choice.path))
    if registry.get_creator(PLUGIN_PROBE[0], PLUGIN_PROBE[1], PLUGIN_NAMESPACE) is None:
        raise BackendError(
            f"{choice.path}: loaded, but it registers no {PLUGIN_PROBE[0]} v{PLUGIN_PROBE[1]} plugin in "
            f"namespace {PLUGIN_NAMESPACE!r}; rebuild it against this TensorRT (plugins/README.md)"
        )
    return sha
