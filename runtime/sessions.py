"""onnxruntime sessions, built one way for the backend, the exporter's checks and quantization.

Threads, graph optimization, logging and profiling are set here only, so a model measured on
the build host runs under the options it gets on the device. Custom ops come in through a
registration hook called on the options before the session is made (``runtime.plugin_ops``
registers the plugins' CPU kernels that way). onnxruntime itself is imported lazily: a device
with only TensorRT never needs it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from .errors import BackendError

CPU_PROVIDERS = ("CPUExecutionProvider",)
OPTIMIZATION_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def onnxruntime() -> Any:
    """The onnxruntime module, or a ``BackendError`` that says how to install it."""
    try:
        return importlib.import_module("onnxruntime")
    except ModuleNotFoundError as exc:
        raise BackendError("the onnxruntime backend needs 'onnxruntime' (pip install onnxruntime)") from exc


def session_options(
    *,
    threads: int | None = None,
    optimization: str = "all",
    log_severity: int | None = None,
    profile_prefix: str | None = None,
) -> Any:
    """``SessionOptions``: ``threads`` intra-op threads and one inter-op thread (onnxruntime's
    defaults when None), an optimization level of ``OPTIMIZATION_LEVELS``, profiling if asked."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
    if log_severity is not None:
        options.log_severity_level = log_severity
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def create_session(
    model: str | os.PathLike[str] | bytes,
    *,
    threads: int | None = None,
    providers: Sequence[Any] | None = None,
    register_custom_ops: Callable[[Any], None] | None = None,
    optimization: str = "all",
    log_severity: int | None = None,
    profile_prefix: str | None = None,
    options: Any = None,
) -> Any:
    """An ``InferenceSession`` for an ONNX file or serialized model, on ``providers`` (CPU if none).

    ``options`` replaces the ones the keywords would build; ``register_custom_ops`` is called with
    the options before the session is made. onnxruntime's own errors pass through to the caller,
    who knows what the model is called.
    """
    ort = onnxruntime()
    if options is None:
        options = session_options(
            threads=threads,
            optimization=optimization,
            log_severity=log_severity,
            profile_prefix=profile_prefix,
        )
    if register_custom_ops is not None:
        register_custom_ops(options)
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, options, providers=list(providers or CPU_PROVIDERS))
