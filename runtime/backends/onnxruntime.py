"""onnxruntime backend: TensorRT EP, CUDA EP or CPU, chosen by flag or by what is installed."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import BackendError
from ..sessions import create_session, onnxruntime, session_options
from .base import BackendOptions, TensorSpec

_PROVIDERS_FOR_DEVICE: dict[str, list[str]] = {
    "auto": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


def choose_providers(device: str, available: list[str], model_path: Path) -> list[str]:
    """The wanted providers that are installed, in preference order; an explicit GPU ask must be met."""
    wanted = _PROVIDERS_FOR_DEVICE[device]
    chosen = [p for p in wanted if p in available]
    if device in ("cuda", "tensorrt") and wanted[0] not in chosen:
        raise BackendError(
            f"{model_path}: --device {device} needs onnxruntime's {wanted[0]}, but this onnxruntime offers "
            f"{', '.join(available)} (install onnxruntime-gpu)"
        )
    return chosen or ["CPUExecutionProvider"]


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


class OnnxRuntimeBackend:
    """One ``InferenceSession``; ``infer`` feeds the image batch and returns outputs by name."""

    def __init__(self, model_path: Path, config: ModelConfig, options: BackendOptions) -> None:
        ort = onnxruntime()
        self.model_path = model_path
        self.config = config
        providers = choose_providers(options.device, ort.get_available_providers(), model_path)
        try:
            if config.flavour == "tensorrt":
                sess_options = session_options(threads=options.threads)
                self.session = self._plugin_session(model_path, sess_options, providers)
            else:
                self.session = create_session(model_path, threads=options.threads, providers=providers)
        except BackendError:
            raise
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"{model_path}: onnxruntime cannot load the model: {first}") from exc
        self.providers = list(self.session.get_providers())
        self.name = f"onnxruntime[{self.providers[0]}]"
        self.inputs = [_spec(a) for a in self.session.get_inputs()]
        self.outputs = [_spec(a) for a in self.session.get_outputs()]
        self._input_name = self.inputs[0].name
        self._input_dtype = np.dtype(self.inputs[0].dtype)
        self._output_names = [o.name for o in self.outputs]

    @staticmethod
    def _plugin_session(model_path: Path, sess_options: Any, providers: list[str]) -> Any:
        """TensorRT-flavour graphs carry plugin nodes that need the project's CPU custom ops."""
        try:
            plugin_ops = importlib.import_module("..plugin_ops", __package__)
        except ModuleNotFoundError as exc:
            raise BackendError(
                f"{model_path}: is a TensorRT-flavour model; running it on onnxruntime needs "
                f"runtime.plugin_ops and onnxruntime-extensions ({exc.name!r} is missing); "
                "or run the portable model.onnx instead"
            ) from exc
        return plugin_ops.create_session(model_path, sess_options, providers)

    # Feeds every graph input by name: a Fast R-CNN mode graph's proposals too.
    takes_proposals = True

    def infer(self, batch: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``batch`` is the image batch, or every input by name (images plus proposals)."""
        feed = dict(batch) if isinstance(batch, dict) else {self._input_name: batch}
        images = feed[self._input_name]
        if images.dtype != self._input_dtype:
            feed[self._input_name] = images.astype(self._input_dtype)
        values = self.session.run(self._output_names, feed)
        return dict(zip(self._output_names, values, strict=True))

    def close(self) -> None:
        self.session = None


def create(model_path: Path, config: ModelConfig, options: BackendOptions) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model_path, config, options)
