"""The backend interface and the factory that picks one for a model file.

A backend module (``runtime/backends/<name>.py``) exposes
``create(model_path: Path, config: ModelConfig, options: BackendOptions) -> Backend`` (the
triton backend, whose model is a URL, ``connect(url, options)``); it is
imported only when chosen, so a camera without TensorRT never imports it, and a build host without
onnxruntime-gpu still opens engines.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..config import ENGINE_SUFFIXES, ModelConfig
from ..errors import BackendError
from ..graph_check import check_config_against_graph

# backend name -> module implementing ``create``
BACKEND_MODULES: dict[str, str] = {
    "onnxruntime": ".onnxruntime",
    "openvino": ".openvino",
    "tensorrt": ".tensorrt.backend",
    "triton": ".triton",
}
DEVICES = ("auto", "cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape (None for a dynamic axis) and numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass
class BackendOptions:
    """How to run: ``device`` is auto | cpu | cuda | tensorrt (the onnxruntime provider or GPU);
    ``threads`` the intra-op thread count (None: the library default); ``extra`` backend-specific."""

    device: str = "auto"
    threads: int | None = None
    device_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """Loaded model that runs one batch: ``infer`` maps the image batch to the named outputs.

    A backend with ``takes_proposals = True`` also accepts every input by name (a dict), which a
    Fast R-CNN mode model needs (``proposals``, ``num_proposals``); ``Detector`` checks for it.
    """

    name: str  # e.g. "onnxruntime[CPUExecutionProvider]"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def available_backends() -> list[str]:
    return list(BACKEND_MODULES)


def is_remote_model(model: str | Path) -> bool:
    """A grpc:// or http:// URL names a model on a Triton server, not a file."""
    return isinstance(model, str) and model.split("://", 1)[0] in ("grpc", "http")


def choose_backend_name(model_path: Path, backend: str) -> str:
    if backend != "auto":
        if backend not in BACKEND_MODULES:
            raise BackendError(
                f"{model_path}: unknown backend {backend!r} (choose from auto, {', '.join(BACKEND_MODULES)})"
            )
        return backend
    return "tensorrt" if model_path.suffix in ENGINE_SUFFIXES else "onnxruntime"


def open_backend(
    path: str | Path,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    config: ModelConfig | None = None,
    **extra: Any,
) -> Backend:
    """Open ``path`` with the named backend ("auto": engines -> tensorrt, ONNX -> onnxruntime,
    a grpc:// or http:// URL -> triton, whose backend carries the server's ``config``)."""
    if is_remote_model(path):
        return _open_remote(str(path), backend, threads, extra)
    model_path = Path(path)
    if device not in DEVICES:
        raise BackendError(f"{model_path}: unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if threads is not None and threads < 1:
        raise BackendError(f"{model_path}: threads must be >= 1, got {threads}")
    config = config or ModelConfig.from_model_file(model_path)
    name = choose_backend_name(model_path, backend)
    if name == "triton":
        raise BackendError(
            f"{model_path}: --backend triton takes the model as a URL, grpc://host:8001/<model> or "
            "http://host:8000/<model> (a model of a repository written by 'edgercnn triton')"
        )
    try:
        module = importlib.import_module(BACKEND_MODULES[name], __package__)
    except ModuleNotFoundError as exc:
        raise BackendError(
            f"{model_path}: the {name} backend needs the Python package {exc.name!r}, which is not installed"
        ) from exc
    options = BackendOptions(device=device, threads=threads, extra=dict(extra))
    opened = module.create(model_path, config, options)
    try:
        check_config_against_graph(config, opened.inputs, opened.outputs, model_path)
    except BaseException:
        opened.close()
        raise
    return opened


def _open_remote(url: str, backend: str, threads: int | None, extra: dict[str, Any]) -> Backend:
    if backend not in ("auto", "triton"):
        raise BackendError(f"{url}: a URL is served by the triton backend, not {backend!r}")
    try:
        module = importlib.import_module(BACKEND_MODULES["triton"], __package__)
    except ModuleNotFoundError as exc:
        raise BackendError(
            f"{url}: the triton backend needs the Python package {exc.name!r}, which is not installed "
            "(pip install 'edgercnn[triton]')"
        ) from exc
    return module.connect(url, BackendOptions(threads=threads, extra=dict(extra)))
