"""OpenVINO backend: the portable ONNX (FP32 or INT8 Q/DQ) on an x86 or Arm CPU.

Offered because it ran the portable graph faster than onnxruntime on the CPUs measured
(docs/benchmarks.md, "CPU peers"); the same model file, the same pre/post-processing. OpenVINO reads
the ONNX itself (``Core.read_model``), so nothing is converted or written. Only the CPU device:
OpenVINO's GPU plugin is for Intel GPUs, and NVIDIA boards have the TensorRT backend. The
TensorRT-flavour file carries plugin nodes OpenVINO cannot run.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import BackendError
from .base import BackendOptions, TensorSpec

_OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "u8": "uint8",
    "i64": "int64",
    "i32": "int32",
    "boolean": "bool",
}


def openvino() -> Any:
    """The openvino module, or a ``BackendError`` that says how to install it."""
    try:
        return importlib.import_module("openvino")
    except ModuleNotFoundError as exc:
        raise BackendError(
            "the openvino backend needs 'openvino' (pip install 'edgercnn[openvino]')"
        ) from exc


def _spec(port: Any) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    element = port.get_element_type().get_type_name()
    return TensorSpec(port.get_any_name(), shape, _OV_TYPES.get(element, element))


def compile_properties(threads: int | None) -> dict[str, Any]:
    """Latency first (one request at a time, as the runtime's loop sends them); ``threads`` caps the pool."""
    properties: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        properties["INFERENCE_NUM_THREADS"] = int(threads)
    return properties


class OpenVinoBackend:
    """One compiled model and its infer request; ``infer`` feeds the image batch, returns outputs by name."""

    def __init__(self, model_path: Path, config: ModelConfig, options: BackendOptions) -> None:
        if options.device not in ("auto", "cpu"):
            raise BackendError(
                f"{model_path}: the openvino backend runs on the CPU only, not --device {options.device} "
                "(on NVIDIA GPUs use the onnxruntime or tensorrt backend)"
            )
        if config.flavour == "tensorrt":
            raise BackendError(
                f"{model_path}: is a TensorRT-flavour model (plugin nodes); "
                "OpenVINO runs the portable model.onnx"
            )
        ov = openvino()
        self.model_path = model_path
        self.config = config
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(model_path)), "CPU",
                                               compile_properties(options.threads))  # fmt: skip
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line texts
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"{model_path}: OpenVINO cannot load the model: {first}") from exc
        self.name = "openvino[CPU]"
        self.inputs = [_spec(p) for p in self.compiled.inputs]
        self.outputs = [_spec(p) for p in self.compiled.outputs]
        self._input_dtype = np.dtype(self.inputs[0].dtype)
        self._request = self.compiled.create_infer_request()

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if batch.dtype != self._input_dtype:
            batch = batch.astype(self._input_dtype)
        self._request.infer({0: np.ascontiguousarray(batch)})
        # the request reuses its output buffers: copy before the next call overwrites them
        return {
            spec.name: np.array(self._request.get_output_tensor(i).data, copy=True)
            for i, spec in enumerate(self.outputs)
        }

    def close(self) -> None:
        self._request = None
        self.compiled = None


def create(model_path: Path, config: ModelConfig, options: BackendOptions) -> OpenVinoBackend:
    return OpenVinoBackend(model_path, config, options)
