"""Plugin libraries are native code that runs when loaded, so they load only from a place the user
chose (--plugin-lib, $EDGERCNN_PLUGIN_LIB, the project's build folder) and only after their bytes
hash to what the engine was built with. Checked with a real shared library whose constructor
writes a marker file: wherever loading must be refused, the marker must never appear."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from edgercnn.runtime.backends.base import BackendOptions
from edgercnn.runtime.backends.tensorrt import plugins as trt_plugins
from edgercnn.runtime.backends.tensorrt.backend import TensorRTBackend
from edgercnn.runtime.backends.tensorrt.plugins import (
    PluginChoice,
    choose_plugin_library,
    open_verified_library,
    plugin_for_engine,
)
from edgercnn.runtime.backends.tensorrt.sidecar import Sidecar, write_sidecar
from edgercnn.runtime.config import ModelConfig
from edgercnn.runtime.errors import BackendError

from tests.builders.engine_inputs import engine_info, model_config

CC = shutil.which("cc") or shutil.which("gcc")
MARKER_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void leave_marker(void) {
    const char* path = getenv("EDGERCNN_TEST_MARKER");
    FILE* f = path ? fopen(path, "w") : NULL;
    if (f) { fputs("constructor ran\n", f); fclose(f); }
}
int edgercnn_plugins_version(void) { return 1; }
"""


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "MARKER"
    monkeypatch.setenv("EDGERCNN_TEST_MARKER", str(path))
    monkeypatch.delenv("EDGERCNN_PLUGIN_LIB", raising=False)
    return path


@pytest.fixture
def hostile_lib(tmp_path: Path) -> Path:
    """A real shared library whose constructor writes the marker (a stand-in for arbitrary code)."""
    if CC is None:
        pytest.skip("no C compiler (cc/gcc) on PATH")
    src = tmp_path / "marker.c"
    src.write_text(MARKER_SOURCE)
    lib = tmp_path / "engine_dir" / "libedgercnn_plugins.so"
    lib.parent.mkdir()
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    return lib


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _engine_beside(lib: Path, plugin_sha256: str | None) -> tuple[Path, Sidecar]:
    """An engine + sidecar in the library's folder whose sidecar names the library (and its hash)."""
    engine = lib.parent / "model.fp16.engine"
    engine.write_bytes(b"not an engine")
    info = engine_info(plugin_library=str(lib), plugin_sha256=plugin_sha256, engine_sha256=_sha(engine))
    write_sidecar(engine, model_config(), info)
    return engine, Sidecar(model_config(), info)


def _fake_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enough of a ``tensorrt`` module for the backend to reach the plugin step (no TensorRT here)."""
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.3.0.30"  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            self.severity = severity

    fake.Logger = Logger  # type: ignore[attr-defined]
    fake.Runtime = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_plugins.importlib, "import_module", lambda name: fake)


def test_sidecar_naming_a_library_beside_the_engine_never_loads_it(
    hostile_lib: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The attack: a crafted sidecar (with a matching hash) names a library shipped beside the engine."""
    engine, _ = _engine_beside(hostile_lib, _sha(hostile_lib))
    monkeypatch.setattr(trt_plugins, "PROJECT_BUILD_DIR", tmp_path / "no-build")
    _fake_tensorrt(monkeypatch)
    config = ModelConfig.from_model_file(engine)
    with pytest.raises(BackendError) as refused:
        TensorRTBackend(engine, config, BackendOptions(device="tensorrt"))
    message = str(refused.value)
    assert "\n" not in message
    assert "never from the engine's sidecar: pass --plugin-lib or set EDGERCNN_PLUGIN_LIB" in message
    assert str(engine) in message
    assert not marker.exists()


def test_a_library_that_does_not_hash_to_the_sidecar_is_refused_before_loading(
    hostile_lib: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine, _ = _engine_beside(hostile_lib, "c" * 64)
    _fake_tensorrt(monkeypatch)
    config = ModelConfig.from_model_file(engine)
    for how in ("argument", "environment"):
        options = BackendOptions(device="tensorrt")
        if how == "argument":
            options.extra["plugin_lib"] = str(hostile_lib)
        else:
            monkeypatch.setenv("EDGERCNN_PLUGIN_LIB", str(hostile_lib))
        with pytest.raises(BackendError, match=r"SHA-256 [0-9a-f]{12}\.\.\. is not the cccccccccccc"):
            TensorRTBackend(engine, config, options)
        assert not marker.exists()


def test_the_marker_library_really_runs_code_when_loaded_with_its_hash(
    hostile_lib: Path, marker: Path
) -> None:
    """Proves the refusals above could fail: the same library, chosen by the user with the right hash,
    is loaded and its constructor runs."""
    _, sha = open_verified_library(PluginChoice(hostile_lib, "--plugin-lib"), _sha(hostile_lib))
    assert sha == _sha(hostile_lib)
    assert marker.read_text() == "constructor ran\n"


def test_plugin_library_sources_and_their_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env_lib = tmp_path / "a.so", tmp_path / "b.so"
    build = tmp_path / "build"
    build.mkdir()
    for lib in (explicit, env_lib, build / "libedgercnn_plugins.so"):
        lib.write_bytes(b"\x7fELF")
    monkeypatch.setenv("EDGERCNN_PLUGIN_LIB", str(env_lib))
    assert choose_plugin_library(explicit, build) == PluginChoice(explicit, "--plugin-lib")
    assert choose_plugin_library(None, build) == PluginChoice(env_lib, "$EDGERCNN_PLUGIN_LIB")
    monkeypatch.delenv("EDGERCNN_PLUGIN_LIB")
    assert choose_plugin_library(None, build) == PluginChoice(
        build / "libedgercnn_plugins.so", "the project build folder"
    )
    assert choose_plugin_library(None, tmp_path / "empty") is None
    with pytest.raises(BackendError, match=r"missing\.so: plugin library \(--plugin-lib\) not found"):
        choose_plugin_library(tmp_path / "missing.so", build)
    monkeypatch.setenv("EDGERCNN_PLUGIN_LIB", str(tmp_path / "gone.so"))
    with pytest.raises(BackendError, match=r"\$EDGERCNN_PLUGIN_LIB"):
        choose_plugin_library(None, build)


def test_engine_without_plugin_layers_loads_only_a_library_the_user_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGERCNN_PLUGIN_LIB", raising=False)
    build = tmp_path / "build"
    build.mkdir()
    (build / "libedgercnn_plugins.so").write_bytes(b"\x7fELF")
    plain = Sidecar(model_config(), engine_info(plugin_library=None, plugin_sha256=None))
    assert plugin_for_engine(None, plain, tmp_path / "m.engine", build) is None
    needs = Sidecar(model_config(), engine_info())
    assert plugin_for_engine(None, needs, tmp_path / "m.engine", build) == PluginChoice(
        build / "libedgercnn_plugins.so", "the project build folder"
    )
    with pytest.raises(BackendError, match="pass --plugin-lib"):
        plugin_for_engine(None, needs, tmp_path / "m.engine", tmp_path / "nothing")
